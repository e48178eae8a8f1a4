"""Example user code that the worker runtime hosts by import path (TWP_WORKFLOWS/TWP_ACTIVITIES).

Each subpackage is what a team would ship in its own image; the sample manifests in
`manifests/samples/` point at these paths, and `tests/runtime/test_examples.py` runs them through
the real runtime, so the samples cannot silently rot.
"""
