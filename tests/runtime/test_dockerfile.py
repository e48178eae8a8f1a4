"""The standard `Dockerfile`, built with `docker build` the way a user builds it.

No base image can be pulled here, so `PYTHON_IMAGE` is the bed's own debootstrap base
(`workerpools/base:bookworm`, Debian's python3 and venv). Packages cannot come from PyPI inside
a build here (TLS to the index fails in containers), so the test serves a wheelhouse, made on the
host by `pip download`, over HTTP on loopback and passes the Dockerfile's pip settings as build
arguments (`PIP_NO_INDEX=1`, `PIP_FIND_LINKS=http://127.0.0.1:PORT/`), as a user behind a mirror
would. The project wheel itself is built inside the image from the sources, as on any machine.
Needs a Docker engine (`hack/setup-docker.sh`, run by `make test`); skipped without one, except
under CI, where a missing engine fails the run.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from tests.runtime.helpers import REPO_ROOT

pytestmark = pytest.mark.docker

BASE = "workerpools/base:bookworm"
IMAGE = "workerpools/operator:dockerfile-test"


def docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The operator's dependencies and the build backend as wheels, served on loopback."""
    usable = shutil.which("docker") and docker("info").returncode == 0
    if not usable:
        reason = "no running Docker engine: run hack/setup-docker.sh (make test does)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    made = subprocess.run(["bash", str(REPO_ROOT / "hack" / "build-base-image.sh")],
                          capture_output=True, text=True, timeout=1800, check=False)  # fmt: skip
    assert made.returncode == 0, made.stderr
    work = tmp_path_factory.mktemp("dockerfile")
    project, wheels = work / "project", work / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(project),
                    str(REPO_ROOT)], check=True, capture_output=True, timeout=300)  # fmt: skip
    (version,) = {p.name.split("-")[1] for p in project.glob("*.whl")}
    platforms = [f"--platform=manylinux_2_{m}_x86_64" for m in range(5, 37)]
    download = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "-d", str(wheels),
         "--find-links", str(project), "--only-binary=:all:", "--python-version", "311",
         "--implementation", "cp", "--abi", "cp311", "--platform=manylinux2014_x86_64", *platforms,
         f"temporal-workerpools[operator]=={version}", "setuptools>=77", "wheel"],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert download.returncode == 0, download.stderr[-3000:]
    for built in wheels.glob("temporal_workerpools-*.whl"):
        built.unlink()  # the image must build the project from its sources
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(wheels))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_dockerfile_builds_the_operator_on_the_debootstrap_base(wheelhouse: str) -> None:
    build = docker(
        "build", "--network", "host", "--target", "operator", "-t", IMAGE,
        "--build-arg", f"PYTHON_IMAGE={BASE}", "--build-arg", "PIP_NO_INDEX=1",
        "--build-arg", f"PIP_FIND_LINKS={wheelhouse}", str(REPO_ROOT),
        timeout=1800,
    )  # fmt: skip
    assert build.returncode == 0, (build.stdout + build.stderr)[-5000:]
    try:
        run = docker(
            "run", "--rm", "--entrypoint", "python", IMAGE, "-c",
            "import os, workerpool_operator, kopf; print(os.getuid())",
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == "10001", "the image runs as the app user, not root"
        help_ = docker("run", "--rm", IMAGE, "--help")
        assert help_.returncode == 0, help_.stderr
        assert "--metrics-port" in help_.stdout, help_.stdout
    finally:
        docker("rmi", "-f", IMAGE)
