"""Versioned rollouts (spec.versioning): build IDs, routing plans and their execution."""
