"""Queue-depth autoscaling: pure decision (`decide`), Temporal poller (`backlog`), engine loop."""
