"""Hostile input against the real API server with the real operator running (issue 9, item 7).

Every spec must be either rejected at admission with a message naming the field, or reach a
current status and either a Deployment that is what the operator's pure planner renders for it
(compared field by field) or a Ready condition (InvalidSpec, ApplyFailed) that names the field.
The operator must stay alive and log no traceback, and no pool may block another (canary pools
created after the hostile batch converge too). The specs are a fixed draw (strategies.generate),
the same in every run, so the counts in bench-results/hostile.json are too.

`test_defect` names each admission/render defect of issue 9; `test_generated_specs` throws
HOSTILE_SPECS (default 500) hypothesis-generated specs at the bed and writes the counts to
bench-results/hostile.json.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from typing import Any

import pytest

from testbed.operator import foreign_writers
from tests.hostile.conftest import (
    ROOT,
    HostileBed,
    Outcome,
    deployment_mismatch,
    field_named,
    names_a_field,
    observed,
)
from tests.hostile.conftest import ready_condition as ready_of
from tests.hostile.strategies import BASE, generate

SPECS = int(os.environ.get("HOSTILE_SPECS", "500"))
RESULTS = ROOT / "bench-results" / "hostile.json"
DIGEST = "sha256:" + "0123456789abcdef" * 4
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# Ready reasons that mean "the operator could not do its job for this spec".
FAILED_REASONS = {"ApplyFailed", "InvalidSpec"}


def spec(**changes: Any) -> dict[str, Any]:
    return {**BASE, "connection": dict(BASE["connection"]), **changes}


# --- named defects of issue 9 -----------------------------------------------------------------

REJECTED: dict[str, tuple[dict[str, Any], str]] = {
    "env-name-not-a-string": (spec(env=[{"name": ["x"]}]), "spec.env[0].name"),
    "env-overrides-twp-contract": (
        spec(env=[{"name": "TWP_TASK_QUEUE", "value": "other"}]),
        "spec.env must not set the TWP_* variables",
    ),
    "queue-with-quote": (spec(taskQueue="it's"), "spec.taskQueue must not contain a quote"),
    "replicas-100000": (spec(replicas=100000), "spec.replicas"),
    "address-port-99999": (
        spec(connection={"address": "host:99999"}),
        "connection.address must be host:port with a port from 1 to 65535",
    ),
    "image-tag-in-repository": (
        spec(image={"repository": "img:v2"}),
        "image.repository must not contain a tag",
    ),
    "image-digest-in-repository": (
        spec(image={"repository": f"x@{DIGEST}"}),
        "image.repository must not contain a digest",
    ),
    "cpu-1-2-3": (spec(resources={"requests": {"cpu": "1.2.3"}}), "spec.resources.requests.cpu"),
    # Admitted by the upstream pattern, refused by the Deployment decoder with a 500.
    "limit-fractional-exponent": (
        spec(resources={"limits": {"example.com/k": ".17334E.7958243"}}),
        "resources.limits values must be Kubernetes quantities",
    ),
    "toleration-bogus-operator": (
        spec(template={"tolerations": [{"key": "k", "operator": "Maybe"}]}),
        "template.tolerations[].operator must be Exists or Equal",
    ),
    "rollout-surge-and-unavailable-zero": (
        spec(rollout={"maxSurge": 0, "maxUnavailable": 0}),
        "maxSurge and maxUnavailable must not both be 0",
    ),
    "pdb-150-percent": (
        spec(disruptionBudget={"maxUnavailable": "150%"}),
        "disruptionBudget.maxUnavailable must be a pod count (0 to 2147483647) or a percentage",
    ),
    "rollout-surge-past-int32": (  # found by the generator: the Deployment refused it unnamed
        spec(rollout={"maxSurge": 2147483648}),
        "rollout.maxSurge must be a pod count (0 to 2147483647)",
    ),
    "reserved-volume-name": (
        spec(template={"volumes": [{"name": "tmp", "emptyDir": {}}]}),
        "the names tmp, dshm and temporal-tls belong to the operator",
    ),
    "reserved-mount-path": (
        spec(
            template={
                "volumes": [{"name": "w", "emptyDir": {}}],
                "volumeMounts": [{"name": "w", "mountPath": "/etc/temporal/tls"}],
            }
        ),
        "the mount paths /tmp, /dev/shm and /etc/temporal/tls",
    ),
}


def _deployment_image(bed: HostileBed, name: str) -> dict[str, Any]:
    dep = bed.get("deployment", name)
    version = dep["metadata"]["labels"]["app.kubernetes.io/version"]
    assert len(version) <= 63
    assert LABEL_VALUE.match(version), version
    return dep


def check_digest(bed: HostileBed, name: str) -> None:
    dep = _deployment_image(bed, name)
    image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"workerpools/worker-runtime@{DIGEST}"


def check_tag(tag: str) -> Any:
    def check(bed: HostileBed, name: str) -> None:
        dep = _deployment_image(bed, name)
        assert dep["spec"]["template"]["spec"]["containers"][0]["image"].endswith(f":{tag}")

    return check


def check_pdb(bed: HostileBed, name: str) -> None:
    assert bed.get("pdb", name)["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def check_gpu_rollout(bed: HostileBed, name: str) -> None:
    strategy = bed.get("deployment", name)["spec"]["strategy"]
    assert strategy["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}


def check_runtime_env(bed: HostileBed, name: str) -> None:
    env = bed.get("deployment", name)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "TWP_LOG_LEVEL", "value": "DEBUG"} in env


RECONCILED: dict[str, tuple[dict[str, Any], Any]] = {
    "image-digest": (
        spec(image={"repository": "workerpools/worker-runtime", "digest": DIGEST}),
        check_digest,
    ),
    "image-tag-128-chars": (spec(image={"tag": "t" * 128}), check_tag("t" * 128)),
    "image-tag-underscore": (spec(image={"tag": "_dev"}), check_tag("_dev")),
    "pdb-unhealthy-pods-evictable": (spec(), check_pdb),
    "gpu-pool-rolls-without-surge": (spec(gpu={"count": 1}), check_gpu_rollout),
    "runtime-env-allowed": (
        spec(env=[{"name": "TWP_LOG_LEVEL", "value": "DEBUG"}]),
        check_runtime_env,
    ),
}


@pytest.fixture(scope="module")
def defects(bed: HostileBed) -> dict[str, tuple[Outcome, dict[str, Any] | None]]:
    """All named cases created at once; admitted ones waited for."""
    items = [(f"d-{k}", s) for k, (s, _) in {**REJECTED, **RECONCILED}.items()]
    outcomes = bed.create_all(items)
    admitted = {o.name for o in outcomes if o.admitted}
    pools = bed.wait_observed(admitted, timeout=120)
    return {o.name[2:]: (o, pools.get(o.name)) for o in outcomes}


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_defect_rejected_at_admission(
    bed: HostileBed, defects: dict[str, tuple[Outcome, Any]], case: str
) -> None:
    outcome, _ = defects[case]
    assert not outcome.admitted, f"{case} was admitted"
    assert REJECTED[case][1] in outcome.message, outcome.message
    assert names_a_field(outcome), outcome.causes


@pytest.mark.parametrize("case", sorted(RECONCILED))
def test_defect_renders_and_reconciles(
    bed: HostileBed, defects: dict[str, tuple[Outcome, Any]], case: str
) -> None:
    outcome, pool = defects[case]
    assert outcome.admitted, outcome.message
    assert pool is not None
    assert observed(pool), pool.get("status")
    ready = ready_of(pool) or {}
    assert ready.get("reason") not in FAILED_REASONS, ready
    RECONCILED[case][1](bed, outcome.name)


# --- generated specs ----------------------------------------------------------------------------


def rejected_field(outcome: Outcome) -> str:
    """The first field (in sorted order) a rejection names, without list indices (for the
    tally). Sorted: the API server lists the causes of one rejection in no fixed order."""
    fields: list[str] = []
    for cause in outcome.causes:
        where = str(cause.get("field") or "")
        if where.startswith(("spec", "metadata")):
            if where == "spec":  # a rule on the spec names its field in the message
                m = re.search(
                    r"spec\.[A-Za-z.\[\]]+|[a-z][A-Za-z]+\.[a-zA-Z]+", str(cause["message"])
                )
                where = m.group(0) if m else where
            fields.append(re.sub(r"\[\d+\]", "[]", where))
    return min(fields) if fields else f"HTTP {outcome.status_code}"


def test_generated_specs_are_rejected_or_reconciled(bed: HostileBed) -> None:
    started = time.monotonic()
    specs = generate(SPECS)
    generated_s = time.monotonic() - started
    assert len(specs) >= min(SPECS, 500), f"only {len(specs)} distinct specs"

    outcomes = bed.create_all([(f"g-{i:04d}", s) for i, s in enumerate(specs)])
    applied_s = time.monotonic() - started - generated_s
    # Canaries after the hostile batch: if one pool could block another, these would wait.
    canaries = bed.create_all([(f"canary-{i}", spec(taskQueue=f"c{i}")) for i in range(5)])
    admitted = {o.name for o in outcomes + canaries if o.admitted}
    pools = bed.wait_observed(admitted, timeout=max(240.0, 1.0 * len(admitted)))
    converged_s = time.monotonic() - started - generated_s - applied_s

    rejected = [o for o in outcomes if not o.admitted]
    reconciled = [o for o in outcomes if o.admitted and observed(pools.get(o.name, {}))]
    unnamed = [o for o in rejected if not names_a_field(o)]
    stuck = [o for o in outcomes if o.admitted and not observed(pools.get(o.name, {}))]
    canaries_stuck = [
        f"{c.name}: {c.message or 'no current status'}"
        for c in canaries
        if not observed(pools.get(c.name, {}))
    ]
    tracebacks = bed.tracebacks()
    reasons = Counter(str((ready_of(pools[o.name]) or {}).get("reason")) for o in reconciled)
    failed = [
        o for o in reconciled if (ready_of(pools[o.name]) or {}).get("reason") in FAILED_REASONS
    ]
    # Every admitted spec ends with the children it asks for (the live Deployment is what the
    # pure planner renders for the stored pool), or with a Ready condition naming the field: a
    # failure, or a pool the planner renders no Deployment for (a missing connectionRef).
    deployments = bed.deployments()
    mismatched: dict[str, list[str]] = {}
    failed_unnamed, named = [], []
    for o in reconciled:
        diff = None if o in failed else deployment_mismatch(pools[o.name], deployments)
        if diff is None:
            named.append(o)
            if not field_named(str((ready_of(pools[o.name]) or {}).get("message"))):
                failed_unnamed.append(o)
        elif diff:
            mismatched[o.name] = diff
    alive = bed.operator.alive()
    foreign = foreign_writers(bed.kube, bed.namespace, bed.operator.field_manager_suffix)

    def sample(items: list[Outcome], with_status: bool = False) -> list[dict[str, Any]]:
        out = []
        for o in items[:10]:
            entry: dict[str, Any] = {"name": o.name, "spec": o.spec}
            if with_status:
                entry["status"] = pools.get(o.name, {}).get("status")
            else:
                entry["message"] = o.message[:500]
            out.append(entry)
        return out

    result: dict[str, Any] = {
        "specs": len(specs),
        "rejected": len(rejected),
        "reconciled": len(reconciled),
        "errors": len(unnamed)
        + len(stuck)
        + len(tracebacks)
        + len(canaries_stuck)
        + len(failed_unnamed)
        + len(mismatched)
        + (0 if alive else 1)
        + len(foreign),
        "errors_detail": {
            "rejected_without_field": len(unnamed),
            "admitted_without_current_status": len(stuck),
            "failed_without_field": len(failed_unnamed),
            "children_not_as_specified": len(mismatched),
            "operator_tracebacks": len(tracebacks),
            "operator_dead": 0 if alive else 1,
            "foreign_writers": len(foreign),
            "canaries_blocked": len(canaries_stuck),
        },
        "rejected_by_field": dict(Counter(rejected_field(o) for o in rejected).most_common()),
        # How each admitted spec ended: the same in every run (the draw is fixed).
        "outcomes": {
            "children_as_specified": len(reconciled) - len(named) - len(mismatched),
            "status_names_the_field": len(named) - len(failed_unnamed),
        },
        "admitted_but_failed": len(failed),
        # A snapshot at convergence: Available vs ReplicasNotReady depends on how soon the
        # fake nodes report pods ready, so these vary run to run (the outcomes above do not).
        "ready_reasons_at_snapshot": dict(sorted(reasons.items())),
        "seconds": {
            "generate": round(generated_s, 1),
            "create": round(applied_s, 1),
            "converge": round(converged_s, 1),
        },
        "samples": {
            "rejected_without_field": sample(unnamed),
            "admitted_without_current_status": sample(stuck, with_status=True),
            "admitted_but_failed": sample(failed, with_status=True),
            "failed_without_field": sample(failed_unnamed, with_status=True),
            "children_not_as_specified": [
                {"name": n, "spec": pools[n]["spec"], "differs": d}
                for n, d in list(mismatched.items())[:10]
            ],
            "tracebacks": [t[:1500] for t in tracebacks[:3]],
            "canaries_blocked": canaries_stuck,
        },
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1, default=str) + "\n")

    assert not unnamed, f"rejections naming no field: {result['samples']['rejected_without_field']}"
    assert not stuck, f"admitted pools without current status: {len(stuck)} (see {RESULTS})"
    assert not canaries_stuck, f"canary pools blocked: {canaries_stuck}"
    assert not tracebacks, f"operator logged {len(tracebacks)} tracebacks:\n{tracebacks[0]}"
    assert not foreign, f"another operator wrote to the hostile pools: {foreign[:10]}"
    assert alive, f"the operator died: {bed.log.read_text()[-3000:]}"
    assert not failed_unnamed, (
        f"failures naming no field: {result['samples']['failed_without_field']}"
    )
    assert not mismatched, (
        f"children not as specified: {result['samples']['children_not_as_specified']}"
    )


def test_task_queue_outside_the_bmp_reconciles(bed: HostileBed) -> None:
    """Found by this suite: an emoji in the queue (carried by an annotation and the env) made
    every child write fail while the operator sent PyYAML with \\U escapes (fixed in
    kube/client.py)."""
    (outcome,) = bed.create_all([("u-emoji-queue", spec(taskQueue="orders-\U0001f600"))])
    assert outcome.admitted, outcome.message
    pool = bed.wait_observed({outcome.name}, timeout=60)[outcome.name]
    assert observed(pool)
    assert (ready_of(pool) or {}).get("reason") not in FAILED_REASONS, ready_of(pool)
