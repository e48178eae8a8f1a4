"""The release as a platform team takes it: published to an OCI registry, verified, installed.

`hack/release.sh` (what `make release` runs) builds the images offline, makes an SBOM per image
(syft), signs images and chart (cosign, with a key pair this module generates) and pushes all of
it to a real OCI registry on loopback (go-containerregistry's `crane registry serve`). Then the
README's install section runs against it: signatures verified first, `helm install oci://...`,
the sample pool applied. The operator is the published image itself, pulled by Docker from the
registry and run on the host network under the chart's ServiceAccount (the bed's pods cannot
reach the API server). The pool's workers run on the real kubelet node, whose containerd pulls
the runtime image from the registry: its hosts.toml makes the registry the node's docker.io
mirror for the test (nothing is imported with `ctr`; the pod's imageID is the pushed digest).

Bed-only differences from the README, each needed on a shared bed: the registry speaks plain
HTTP (`--plain-http`, `--allow-http-registry`), the CRDs are the bed's (`crds.install=false`),
the operator watches only this test's namespace, and the sample pool gets the bed's Temporal
address and the real node's placement. `make test` publishes the operator and runtime images;
`make e2e-release-gpu` (WORKERPOOLS_RELEASE_GPU=1) publishes runtime-gpu as well, as `make
release` does, and checks its signature and SBOM too. It is opt-in because the GPU image is
6 GB: about 8 minutes warm and 17 cold (2.9 GB of wheels, the dependency image
hack/build-images.sh caches) would take a fresh machine's test run well past an hour. No pool
here runs the GPU image (there is no GPU).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

import worker_runtime
from testbed.forward import Forwarder, forwarding
from testbed.operator import metric, sa_kubeconfig
from testbed.pytest_cluster import KubeCluster
from testbed.realnode import GATEWAY, NODE_NAME, RealNode, placement
from testbed.registry import LocalRegistry
from testbed.results import record
from testbed.temporal import TemporalDevServer, free_port
from testbed.tools import tools_dir
from workerpool_operator.api import v1alpha1 as api

ROOT = Path(__file__).resolve().parents[2]
VERSION = worker_runtime.__version__
CHART = "workerpool-operator"
RELEASE = "workerpool-operator"  # the README's release name
SA = RELEASE  # fullname == release name when the release is named like the chart
GPU = os.environ.get("WORKERPOOLS_RELEASE_GPU") == "1"  # make e2e-release-gpu
IMAGES = ("operator", "runtime", *(("runtime-gpu",) if GPU else ()))  # hack/release.sh's targets
# Each image's repository and what its SBOM must list (the project, and what the image is for).
REPOS = {
    "workerpools/operator": {"temporal-workerpools", "kopf", "pydantic"},
    "workerpools/worker-runtime": {"temporal-workerpools", "temporalio", "httpx"},
    **({"workerpools/worker-runtime-gpu": {"temporal-workerpools", "temporalio", "torch",
                                           "transformers"}} if GPU else {}),
}  # fmt: skip
# The README's install section, as the test runs it (checked against README.md below).
VERIFY = "cosign verify --key cosign.pub --insecure-ignore-tlog"
README_STEPS = (
    f'{VERIFY} "$REGISTRY/charts/workerpool-operator:$VERSION"',
    f'{VERIFY} "$REGISTRY/workerpools/operator:$VERSION"',
    f'{VERIFY} "$REGISTRY/workerpools/worker-runtime:$VERSION"',
    'helm install workerpool-operator "oci://$REGISTRY/charts/workerpool-operator" \\',
    '  --version "$VERSION" -n workerpools-system --create-namespace',
    "kubectl apply -f manifests/samples/cpu-pool.yaml",
    "kubectl wait --for=condition=Ready twp/orders --timeout=2m",
)  # fmt: skip


def _fail_or_skip(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@dataclass
class Release:
    registry: LocalRegistry
    bin: Path
    key: Path
    pub: Path
    other_pub: Path
    out: Path
    refs: dict[str, str]  # repository (without registry) -> digest

    def cosign(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "cosign"), *args], capture_output=True, text=True, timeout=300,
            check=False, env={**os.environ, "COSIGN_PASSWORD": ""},
        )  # fmt: skip

    def verify(self, ref: str, pub: Path) -> subprocess.CompletedProcess[str]:
        """The README's `cosign verify`, plus the flags a plain-HTTP loopback registry needs."""
        return self.cosign("verify", "--key", str(pub), "--insecure-ignore-tlog",
                           "--allow-http-registry", "--allow-insecure-registry", ref)  # fmt: skip


@pytest.fixture(scope="module")
def release_tools() -> Path:
    if shutil.which("go") is None:
        _fail_or_skip("go is not on PATH: the release tools are built from their Go modules")
    built = subprocess.run(
        ["bash", str(ROOT / "hack" / "build-release-tools.sh")],
        capture_output=True, text=True, timeout=3600, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    helm = tools_dir() / "helm"
    if not helm.exists():
        _fail_or_skip("helm not built: run `make tools`")
    return Path(built.stdout.strip())


@pytest.fixture(scope="module")
def release(
    release_tools: Path, real_node: RealNode, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    """`hack/release.sh` into a fresh loopback registry, with a key pair made here."""
    work = tmp_path_factory.mktemp("release")
    cosign = str(release_tools / "cosign")
    env = {**os.environ, "COSIGN_PASSWORD": ""}
    for name in ("release", "other"):
        (work / name).mkdir()
        subprocess.run([cosign, "generate-key-pair"], cwd=work / name, env=env,
                       capture_output=True, check=True, timeout=60)  # fmt: skip
    with LocalRegistry(release_tools / "crane", work / "blobs") as registry:
        out = work / "out"
        published = subprocess.run(
            ["bash", str(ROOT / "hack" / "release.sh")],
            env={**env, "REGISTRY": registry.address, "IMAGES": " ".join(IMAGES),
                 "COSIGN_KEY": str(work / "release" / "cosign.key"), "OUT": str(out),
                 "PYTHON": sys.executable},
            capture_output=True, text=True, timeout=3600, check=False,
        )  # fmt: skip
        assert published.returncode == 0, published.stderr[-5000:]
        refs = {}
        for line in (out / "release.txt").read_text().split():
            name, digest = line.split("@")
            repo = name.removeprefix(registry.address + "/").rsplit(":", 1)[0]
            refs[repo] = digest
        keys = work / "release"
        yield Release(registry, release_tools, keys / "cosign.key", keys / "cosign.pub",
                      work / "other" / "cosign.pub", out, refs)  # fmt: skip
    # The pushed blobs (gigabytes with the GPU image) do not outlive the module.
    shutil.rmtree(work / "blobs", ignore_errors=True)


def test_release_is_signed_with_an_sbom_and_a_foreign_key_is_refused(release: Release) -> None:
    reg = release.registry.address
    assert set(release.refs) == {*REPOS, "charts/workerpool-operator"}, release.refs
    for repo in release.refs:
        ref = f"{reg}/{repo}:{VERSION}"
        ok = release.verify(ref, release.pub)
        assert ok.returncode == 0, f"{ref}: {ok.stderr}"
        # What was verified is what was pushed: cosign prints the signed digest.
        signed = {item["critical"]["image"]["docker-manifest-digest"]
                  for item in json.loads(ok.stdout)}  # fmt: skip
        assert signed == {release.refs[repo]}, (repo, signed)
        foreign = release.verify(ref, release.other_pub)
        assert foreign.returncode != 0, f"{ref} verified with a key that did not sign it"
    for repo, expected in REPOS.items():
        ref = f"{reg}/{repo}@{release.refs[repo]}"
        att = release.cosign("verify-attestation", "--key", str(release.pub), "--type", "spdxjson",
                             "--insecure-ignore-tlog", "--allow-http-registry",
                             "--allow-insecure-registry", ref)  # fmt: skip
        assert att.returncode == 0, att.stderr
        envelope = json.loads(att.stdout.splitlines()[0])
        sbom = json.loads(base64.b64decode(envelope["payload"]))["predicate"]
        packages = {p["name"] for p in sbom["packages"]}
        # The SBOM describes the image's Python environment, the project itself included.
        assert expected <= packages, (repo, sorted(packages))


def test_readme_install_section_is_what_this_module_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    for step in README_STEPS:
        assert step in readme, f"README's install section lost: {step}"


def operator_kubeconfig(kube: KubeCluster, namespace: str, path: Path) -> Path:
    """The chart ServiceAccount's kubeconfig, self-contained (CA inline) for a container."""
    sa_kubeconfig(kube, SA, namespace, path)
    doc = yaml.safe_load(path.read_text())
    cluster = doc["clusters"][0]["cluster"]
    if "certificate-authority" in cluster:
        ca = Path(cluster.pop("certificate-authority")).read_bytes()
        cluster["certificate-authority-data"] = base64.b64encode(ca).decode()
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o644)  # read by the image's UID 10001
    return path


def chart_container(helm: list[str], namespace: str) -> dict[str, Any]:
    manifest = subprocess.run(
        [*helm, "get", "manifest", RELEASE, "-n", namespace],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    for doc in yaml.safe_load_all(manifest):
        if doc and doc["kind"] == "Deployment":
            return dict(doc["spec"]["template"]["spec"]["containers"][0])
    raise AssertionError("the chart rendered no Deployment")


@pytest.fixture
def temporal_on_bridge(
    real_node: RealNode, temporal_server: TemporalDevServer, tmp_path: Path
) -> Iterator[Forwarder]:
    with forwarding(GATEWAY, temporal_server.address, tmp_path / "fwd.log") as fwd:
        yield fwd


@pytest.fixture
def operator_namespace(kube_cluster: KubeCluster) -> Iterator[str]:
    name = f"t-release-op-{uuid.uuid4().hex[:6]}"
    yield name
    kube_cluster.run("delete", "namespace", name, "--wait=false", "--ignore-not-found")


def sample_pool(address: str) -> dict[str, Any]:
    """manifests/samples/cpu-pool.yaml with the bed's Temporal address, on the real node."""
    pool: dict[str, Any] = yaml.safe_load((ROOT / "manifests/samples/cpu-pool.yaml").read_text())
    pool["spec"]["connection"]["address"] = address
    pool["spec"]["template"] = placement()
    return pool


@pytest.mark.usefixtures("pool_crd")
def test_install_from_the_registry_runs_a_pool_on_the_real_node(
    release: Release,
    kube_cluster: KubeCluster,
    real_node: RealNode,
    namespace: str,
    operator_namespace: str,
    temporal_on_bridge: Forwarder,
    tmp_path: Path,
) -> None:
    kube, reg = kube_cluster, release.registry.address
    home = tmp_path / "helm"
    helm = [str(tools_dir() / "helm"), "--kubeconfig", kube.kubeconfig,
            "--registry-config", str(home / "registry.json"),
            "--repository-cache", str(home / "cache")]  # fmt: skip
    # The pools' default runtime is the release's: the operator's version, nothing pinned.
    assert api.DEFAULT_IMAGE_TAG == VERSION
    runtime = f"{api.DEFAULT_IMAGE_REPOSITORY}:{VERSION}"
    real_node.remove_image(runtime)  # so the pod's image can only come from the registry
    container_name = f"twp-release-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    with real_node.mirror("docker.io", release.registry.url):
        # --- the README: verify, install, apply the sample pool --------------------------------
        for repo in ("charts/workerpool-operator", *REPOS):
            ok = release.verify(f"{reg}/{repo}:{VERSION}", release.pub)
            assert ok.returncode == 0, ok.stderr
        subprocess.run(
            [*helm, "install", RELEASE, f"oci://{reg}/charts/{CHART}", "--version", VERSION,
             "-n", operator_namespace, "--create-namespace", "--plain-http",
             "--set", "crds.install=false", "--set", f"watchNamespaces={{{namespace}}}"],
            capture_output=True, text=True, check=True, timeout=300,
        )  # fmt: skip
        container = chart_container(helm, operator_namespace)
        image = f"{reg}/workerpools/operator:{VERSION}"
        assert container["image"] == image, "the published chart names the published image"

        # --- the operator: the published image, as the chart runs it --------------------------
        kubeconfig = operator_kubeconfig(kube, operator_namespace, tmp_path / "op.kubeconfig")
        metrics_port, liveness_port = free_port(), free_port()
        op_image = f"{reg}/workerpools/operator@{release.refs['workerpools/operator']}"
        subprocess.run(["docker", "pull", op_image], capture_output=True, check=True, timeout=600)
        subprocess.run(
            ["docker", "run", "-d", "--name", container_name, "--network", "host",
             "-v", f"{kubeconfig}:/kube/config:ro", "-e", "KUBECONFIG=/kube/config",
             "-e", f"POD_NAMESPACE={operator_namespace}", "-e", f"POD_NAME={container_name}",
             op_image,
             *container["args"],
             # host network: ports of this test, not the chart's fixed ones (argparse: last wins)
             f"--metrics-port={metrics_port}", f"--liveness-port={liveness_port}"],
            capture_output=True, text=True, check=True, timeout=120,
        )  # fmt: skip
        try:
            kube.apply(sample_pool(temporal_on_bridge.address), namespace=namespace)

            def ready() -> bool:
                status = kube.get("twp", "orders", namespace=namespace).get("status") or {}
                return any(c["type"] == "Ready" and c["status"] == "True"
                           for c in status.get("conditions") or [])  # fmt: skip

            try:
                kube.wait_for(ready, what="pool orders Ready on the real node", timeout=600)
            except BaseException:
                logs = subprocess.run(["docker", "logs", "--tail", "60", container_name],
                                      capture_output=True, text=True, check=False)  # fmt: skip
                print(logs.stdout[-6000:], logs.stderr[-6000:])
                raise
            install_s = time.monotonic() - started
            pods = kube.get("pods", namespace=namespace)["items"]
            assert pods, "no worker pod"
            for pod in pods:
                assert pod["spec"]["nodeName"] == NODE_NAME
                (status,) = pod["status"]["containerStatuses"]
                # Pulled from the registry: containerd records the pushed manifest's digest.
                assert status["image"] == f"docker.io/{runtime}", status
                assert status["imageID"] == (
                    f"docker.io/{api.DEFAULT_IMAGE_REPOSITORY}@{release.refs['workerpools/worker-runtime']}"
                ), status
            text = subprocess.run(
                ["curl", "-s", f"http://127.0.0.1:{metrics_port}/metrics"],
                capture_output=True, text=True, check=False, timeout=10,
            ).stdout  # fmt: skip
            assert metric(text, "workerpool_operator_writes_total") > 0, "no write by the image"
        finally:
            subprocess.run(["docker", "rm", "-f", container_name], capture_output=True, check=False)
            kube.run("delete", "twp", "orders", "-n", namespace, "--ignore-not-found")
            # the chart's ClusterRole and ClusterRoleBinding outlive the namespace
            subprocess.run([*helm, "uninstall", RELEASE, "-n", operator_namespace, "--wait"],
                           capture_output=True, timeout=300, check=False)  # fmt: skip
    record("release", install_s=round(install_s, 1))
