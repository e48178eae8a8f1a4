"""A real OCI registry on loopback: go-containerregistry's `crane registry serve`.

The release tests publish into it (hack/release.sh), install the chart from it
(`helm install oci://...`) and let the real node's containerd pull from it. Blobs live in a
folder of the caller's (`--disk`), so a registry restarted on the same folder keeps them.
"""

from __future__ import annotations

import subprocess
import urllib.request
from pathlib import Path
from types import TracebackType

from testbed.cluster import TestbedError, wait_until
from testbed.temporal import free_port


class LocalRegistry:
    """`crane registry serve --address 127.0.0.1:PORT --disk DIR` as a child process."""

    def __init__(self, crane: str | Path, folder: Path) -> None:
        self.crane, self.folder = str(crane), folder
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """host:port, the registry part of an image reference."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/v2/", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def start(self) -> LocalRegistry:
        self.folder.mkdir(parents=True, exist_ok=True)
        log = (self.folder.parent / f"registry-{self.port}.log").open("ab")
        self.proc = subprocess.Popen(
            [self.crane, "registry", "serve", "--address", self.address,
             "--disk", str(self.folder)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        log.close()
        try:
            wait_until(self.answers, timeout=30, interval=0.2, what=f"registry on {self.address}")
        except TestbedError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
