"""A multi-architecture release: operator and runtime as amd64 + arm64 image indexes.

`hack/release.sh` with `ARCHS="amd64 arm64"` (`make release ARCHS="amd64 arm64"`) builds the arm64
images from an arm64 debootstrap base whose second stage, and every `RUN` of the image build,
runs under qemu-user-static; it pushes each architecture's image, attests its SBOM, signs it, and
makes `<name>:<version>` an index of both, signed too. This module publishes such a release to a
loopback registry and checks what a user on either architecture gets: the index lists
linux/amd64 and linux/arm64, the index and each image verify with the release key, and the arm64
image's own Python (emulated here) imports the project.

Not part of `make test`: a cold run debootstraps arm64 under emulation (tens of minutes on two
busy cores). It runs with `make e2e-multiarch`; elsewhere it is reported skipped, with that reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import worker_runtime
from testbed.registry import LocalRegistry

ROOT = Path(__file__).resolve().parents[2]
VERSION = worker_runtime.__version__
MULTIARCH = os.environ.get("WORKERPOOLS_MULTIARCH") == "1"
pytestmark = pytest.mark.skipif(
    not MULTIARCH,
    reason="the multi-arch release builds arm64 under qemu (slow): make e2e-multiarch",
)
# Each multi-arch repository and the module its image's Python must import.
REPOS = {
    "workerpools/operator": "workerpool_operator",
    "workerpools/worker-runtime": "worker_runtime",
}
PLATFORMS = {"linux/amd64", "linux/arm64"}


@dataclass
class Published:
    registry: LocalRegistry
    bin: Path
    pub: Path
    refs: dict[str, str]  # repository -> index digest

    def tool(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / name), *args], capture_output=True, text=True, timeout=600,
            check=False, env={**os.environ, "COSIGN_PASSWORD": ""},
        )  # fmt: skip

    def verify(self, ref: str) -> set[str]:
        """The digests the release key's signatures on REF cover (fails if none verifies)."""
        ok = self.tool("cosign", "verify", "--key", str(self.pub), "--insecure-ignore-tlog",
                       "--allow-http-registry", "--allow-insecure-registry", ref)  # fmt: skip
        assert ok.returncode == 0, f"{ref}: {ok.stderr}"
        return {item["critical"]["image"]["docker-manifest-digest"]
                for item in json.loads(ok.stdout)}  # fmt: skip


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    for need in ("go", "docker", "debootstrap"):
        if shutil.which(need) is None:
            pytest.fail(f"{need} is not on PATH (make setup installs it)", pytrace=False)
    built = subprocess.run(["bash", str(ROOT / "hack" / "build-release-tools.sh")],
                           capture_output=True, text=True, timeout=3600, check=False)  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    bin_ = Path(built.stdout.strip())
    work = tmp_path_factory.mktemp("multiarch")
    env = {**os.environ, "COSIGN_PASSWORD": ""}
    subprocess.run([str(bin_ / "cosign"), "generate-key-pair"], cwd=work, env=env,
                   capture_output=True, check=True, timeout=60)  # fmt: skip
    with LocalRegistry(bin_ / "crane", work / "blobs") as registry:
        out = work / "out"
        release = subprocess.run(
            ["bash", str(ROOT / "hack" / "release.sh")],
            env={**env, "REGISTRY": registry.address, "IMAGES": "operator runtime",
                 "ARCHS": "amd64 arm64", "COSIGN_KEY": str(work / "cosign.key"), "OUT": str(out),
                 "PYTHON": sys.executable},
            capture_output=True, text=True, timeout=5400, check=False,
        )  # fmt: skip
        assert release.returncode == 0, release.stderr[-5000:]
        refs = {}
        for line in (out / "release.txt").read_text().split():
            name, digest = line.split("@")
            refs[name.removeprefix(registry.address + "/").rsplit(":", 1)[0]] = digest
        yield Published(registry, bin_, work / "cosign.pub", refs)
    shutil.rmtree(work / "blobs", ignore_errors=True)


@pytest.mark.parametrize("repo", sorted(REPOS))
def test_each_image_is_a_signed_index_of_amd64_and_arm64_and_arm64_python_runs(
    published: Published, repo: str
) -> None:
    reg = published.registry.address
    ref = f"{reg}/{repo}:{VERSION}"
    raw = published.tool("crane", "manifest", "--insecure", ref)
    assert raw.returncode == 0, raw.stderr
    index = json.loads(raw.stdout)
    assert "manifests" in index, f"{ref} is not an index: {index.get('mediaType')}"
    platforms = {f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
                 for m in index["manifests"]}  # fmt: skip
    assert set(platforms) == PLATFORMS, platforms
    # The tag's signature covers the index a user pulls, and each image is signed by digest.
    assert published.verify(ref) == {published.refs[repo]}
    for digest in platforms.values():
        assert published.verify(f"{reg}/{repo}@{digest}") == {digest}
    # The arm64 image's own interpreter, emulated: it imports the project.
    arm = f"{reg}/{repo}@{platforms['linux/arm64']}"
    run = subprocess.run(
        ["docker", "run", "--rm", "--platform", "linux/arm64", "--entrypoint", "python", arm,
         "-c", f"import platform, {REPOS[repo]}; print(platform.machine())"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "aarch64", run.stdout
