"""Everything about reaching Temporal: connections resolved from the caches, one client per
credentials, and the health check of connection objects."""
