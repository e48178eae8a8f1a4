"""Copy the generated CRDs (crds/*.yaml) into the Helm chart, or `--check` the copy is current.

A chart can only read files inside its own folder, so charts/workerpool-operator/files/crds/
holds byte-identical copies of crds/; `make crds` refreshes them and `make lint` checks them.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "crds"
TARGET = ROOT / "charts" / "workerpool-operator" / "files" / "crds"


def expected() -> dict[str, str]:
    return {
        p.name: p.read_text()
        for p in sorted(SOURCE.glob("*.yaml"))
        if p.name != "kustomization.yaml"
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    want = expected()
    have = {p.name: p.read_text() for p in sorted(TARGET.glob("*.yaml"))}
    if "--check" in args:
        if want != have:
            print(f"{TARGET} differs from crds/: run `make crds` and commit it", file=sys.stderr)
            return 1
        return 0
    TARGET.mkdir(parents=True, exist_ok=True)
    for name in set(have) - set(want):
        (TARGET / name).unlink()
    for name, text in want.items():
        (TARGET / name).write_text(text)
        print(TARGET / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
