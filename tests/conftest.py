"""Session-wide fixtures: the real Temporal dev server and the real local control plane.

Each lives in its own plugin module so the two can evolve independently.
"""

pytest_plugins = ["testbed.pytest_temporal", "testbed.pytest_cluster", "testbed.pytest_realnode"]
