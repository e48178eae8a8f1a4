"""Figures that tests measure on the way (never asserted): merged into
bench-results/<name>.json, next to what `make bench` writes."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "bench-results"


def record(name: str, **figures: float) -> None:
    """Merge `figures` into bench-results/`name`.json."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data.update(figures)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
