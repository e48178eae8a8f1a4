"""Queue-depth autoscaling of Builtin pools: observe the backlog (`observe.py`), decide (pure,
`decide.py`), and the loop that writes replicas and status (`loop.py`)."""
