"""Pool reconciliation: events -> work queue -> plan (pure) -> execute -> status.

Read in that order: `queue.py`, `plan.py` (pure), `execute.py`, `report.py` (status, Events)."""
