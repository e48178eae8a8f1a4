"""Real test bed: local Kubernetes control plane (kwok) and Temporal dev server, no mocks."""
