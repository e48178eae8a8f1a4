"""Everything that talks to the Kubernetes API server: the client, its errors, the watch-fed
caches and leader election. Nothing else in the operator opens a connection to it."""
