"""The real operator as a subprocess for the chart, GitOps and metric-name tests: the
testbed's `OperatorProcess` with the call shape these tests use (an argument list, one log
file, POD_NAMESPACE) plus `sample`, `log` and `assert_no_forbidden`."""

from __future__ import annotations

from pathlib import Path

from testbed import operator as testbed_operator
from testbed.operator import sa_kubeconfig

__all__ = ["OperatorProcess", "sa_kubeconfig"]


class OperatorProcess(testbed_operator.OperatorProcess):
    """`python -m workerpool_operator ARGS` with KUBECONFIG and POD_NAMESPACE set."""

    def __init__(
        self,
        kubeconfig: str | Path,
        args: list[str],
        log_path: Path,
        *,
        pod_namespace: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        extra = {**(env or {}), **({"POD_NAMESPACE": pod_namespace} if pod_namespace else {})}
        super().__init__(str(kubeconfig), log_path.stem, *args, log_dir=log_path.parent, env=extra)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metrics(self) -> str:
        """The operator's /metrics page ('' while it does not answer yet)."""
        if not self.alive():
            raise AssertionError(f"operator exited {self.proc.returncode}:\n{self.log[-4000:]}")
        try:
            return super().metrics()
        except OSError:
            return ""

    def sample(self, name: str) -> float | None:
        """Sum of a metric's samples (None while absent)."""
        total, seen = 0.0, False
        for line in self.metrics().splitlines():
            if line.startswith((name + "{", name + " ")):
                total += float(line.rsplit(" ", 1)[1])
                seen = True
        return total if seen else None

    def assert_no_forbidden(self) -> None:
        text = self.log
        for needle in ("Forbidden", " 403", "forbidden"):
            assert needle not in text, f"{needle!r} in operator log:\n{text[-4000:]}"
