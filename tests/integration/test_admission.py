"""The CRD's schema and CEL rules reject bad pools at admission, with messages naming the fix.

Against the real kube-apiserver: every rule in the api/ models is exercised here.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.builders import VALID, assert_rejected, with_spec

CASES = [
    ("address-scheme", with_spec(connection={"address": "http://t:7233"}), "host:port"),
    ("address-no-port", with_spec(connection={"address": "temporal"}), "host:port"),
    (
        "inline-api-key",
        with_spec(connection={"address": "t:7233", "tls": {}, "apiKeySecretRef": {"name": "k"}}),
        "spec.connection.apiKeySecretRef is no longer accepted in a pool: move the credentials "
        "into a TemporalConnection",
    ),
    (
        "inline-tls-secret",
        with_spec(connection={"address": "t:7233", "tls": {"secretName": "mtls"}}),
        "spec.connection.tls.secretName is no longer accepted in a pool: move the credentials "
        "into a TemporalConnection",
    ),
    (
        "connection-and-ref",
        with_spec(connectionRef={"name": "prod"}),
        "set exactly one of spec.connection",
    ),
    (
        "neither-connection-nor-ref",
        {**VALID, "spec": {k: v for k, v in VALID["spec"].items() if k != "connection"}},
        "set exactly one of spec.connection",
    ),
    (
        "connection-ref-bad-kind",
        {
            **VALID,
            "spec": {
                "taskQueue": "q",
                "workflows": ["app.workflows:Flow"],
                "connectionRef": {"kind": "Secret", "name": "x"},
            },
        },
        "Unsupported value",
    ),
    ("empty-queue", with_spec(taskQueue=""), "spec.taskQueue must not be empty"),
    ("blank-queue", with_spec(taskQueue="   "), "spec.taskQueue must not be empty"),
    ("nothing-hosted", with_spec(workflows=[]), "must host something"),
    ("bad-import-path", with_spec(workflows=["app.workflows.Flow"]), "should match"),
    (
        "min-over-max",
        with_spec(autoscaling={"minReplicas": 5, "maxReplicas": 2}),
        "minReplicas must not exceed",
    ),
    (
        "hpa-without-target",
        with_spec(autoscaling={"engine": "HPA"}),
        "needs autoscaling.cpuUtilization",
    ),
    (
        "hpa-to-zero",
        with_spec(autoscaling={"engine": "HPA", "minReplicas": 0, "cpuUtilization": 70}),
        "cannot scale to zero",
    ),
    ("replicas-and-autoscaling", with_spec(replicas=2, autoscaling={}), "autoscaler owns"),
    ("gpu-zero", with_spec(gpu={"count": 0}), "gpu.count must be at least 1"),
    (
        "gpu-in-limits",
        with_spec(gpu={"count": 1}, resources={"limits": {"nvidia.com/gpu": 1}}),
        "spec.gpu.count",
    ),
    (
        "pdb-both",
        with_spec(disruptionBudget={"maxUnavailable": 1, "minAvailable": 1}),
        "exactly one of",
    ),
    (
        "service-monitor-enabled-typo",
        with_spec(metrics={"serviceMonitor": {"enabled": "yes"}}),
        "spec.metrics.serviceMonitor.enabled",
    ),
    ("engine-typo", with_spec(autoscaling={"engine": "Keda"}), "Unsupported value"),
    ("negative-replicas", with_spec(replicas=-1), "spec.replicas"),
    ("name-too-long", {**VALID, "metadata": {"name": "p" * 64}}, "DNS-1035 label"),
    ("name-starts-with-digit", {**VALID, "metadata": {"name": "1pool"}}, "DNS-1035 label"),
    # issue 9: typed pod fields (upstream Kubernetes schema) and the CEL rules on top of them
    ("address-port-99999", with_spec(connection={"address": "t:99999"}), "port from 1 to 65535"),
    ("address-port-0", with_spec(connection={"address": "t:0"}), "port from 1 to 65535"),
    ("env-name-not-a-string", with_spec(env=[{"name": ["x"]}]), "spec.env[0].name"),
    ("env-without-name", with_spec(env=[{"value": "x"}]), "spec.env[0].name"),
    (
        "env-reserved-twp",
        with_spec(env=[{"name": "TWP_TASK_QUEUE", "value": "other"}]),
        "spec.env must not set the TWP_* variables",
    ),
    (
        "env-duplicate-name",
        with_spec(env=[{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]),
        "spec.env[1]",
    ),
    (
        "env-from-twp-prefix",
        with_spec(envFrom=[{"prefix": "TWP_", "configMapRef": {"name": "c"}}]),
        "spec.envFrom[].prefix must not start with TWP_",
    ),
    ("env-name-with-equals", with_spec(env=[{"name": "A=B", "value": "x"}]), "printable ASCII"),
    ("env-from-empty", with_spec(envFrom=[{}]), "exactly one of configMapRef or secretRef"),
    (
        "env-from-without-name",
        with_spec(envFrom=[{"configMapRef": {}}]),
        "configMapRef.name or secretRef.name is required",
    ),
    (
        "env-from-prefix-non-ascii",
        with_spec(envFrom=[{"prefix": "Ø_", "configMapRef": {"name": "c"}}]),
        "spec.envFrom[].prefix must be printable ASCII",
    ),
    (
        "env-value-and-value-from",
        with_spec(env=[{"name": "A", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]),
        "either value or valueFrom",
    ),
    (
        "env-secret-ref-without-name",
        with_spec(env=[{"name": "A", "valueFrom": {"secretKeyRef": {"key": "k"}}}]),
        "secretKeyRef.name and configMapKeyRef.name are required",
    ),
    (
        "topology-spread-bogus",
        with_spec(
            template={
                "topologySpreadConstraints": [
                    {"maxSkew": 0, "topologyKey": "zone", "whenUnsatisfiable": "Sometimes"}
                ]
            }
        ),
        "whenUnsatisfiable must be DoNotSchedule or ScheduleAnyway",
    ),
    (
        "env-file-key-ref-only",
        with_spec(
            env=[
                {
                    "name": "A",
                    "valueFrom": {"fileKeyRef": {"volumeName": "v", "path": "p", "key": "k"}},
                }
            ]
        ),
        "needs exactly one of fieldRef",
    ),
    ("gpu-resource-name-invalid", with_spec(gpu={"resourceName": "./x"}), "spec.gpu.resourceName"),
    ("cpu-1.2.3", with_spec(resources={"requests": {"cpu": "1.2.3"}}), "spec.resources.requests"),
    (
        "memory-negative",
        with_spec(resources={"limits": {"memory": "-1Gi"}}),
        "must not be negative",
    ),
    (
        "requests-over-limits",
        with_spec(resources={"requests": {"cpu": "2"}, "limits": {"cpu": "500m"}}),
        "resources.requests must not exceed resources.limits",
    ),
    (
        "toleration-bogus-operator",
        with_spec(template={"tolerations": [{"key": "k", "operator": "Maybe"}]}),
        "template.tolerations[].operator must be Exists or Equal",
    ),
    (
        "gpu-toleration-bogus-effect",
        with_spec(gpu={"count": 1, "tolerations": [{"operator": "Exists", "effect": "Never"}]}),
        "gpu.tolerations[].effect",
    ),
    (
        "toleration-seconds-string",
        with_spec(template={"tolerations": [{"key": "k", "tolerationSeconds": "ten"}]}),
        "tolerationSeconds",
    ),
    ("affinity-not-an-object", with_spec(template={"affinity": {"nodeAffinity": "x"}}), "affinity"),
    (
        "rollout-both-zero",
        with_spec(rollout={"maxSurge": 0, "maxUnavailable": 0}),
        "must not both be 0",
    ),
    (
        "rollout-percent-zero",
        with_spec(rollout={"maxSurge": "0%", "maxUnavailable": 0}),
        "must not both be 0",
    ),
    (
        "gpu-rollout-unavailable-zero",
        with_spec(gpu={"count": 1}, rollout={"maxUnavailable": 0}),
        "on GPU pools maxSurge defaults to 0",
    ),
    ("rollout-surge-garbage", with_spec(rollout={"maxSurge": "lots"}), "rollout.maxSurge"),
    (
        "rollout-unavailable-150",
        with_spec(rollout={"maxUnavailable": "150%"}),
        "rollout.maxUnavailable must be",
    ),
    (
        "pdb-150-percent",
        with_spec(disruptionBudget={"minAvailable": "150%"}),
        "percentage from 0% to 100%",
    ),
    ("pdb-negative", with_spec(disruptionBudget={"maxUnavailable": -1}), "disruptionBudget"),
    ("replicas-100000", with_spec(replicas=100000), "spec.replicas"),
    ("replicas-over-limit", with_spec(replicas=101), "replica limit"),
    (
        "max-replicas-over-limit",
        with_spec(autoscaling={"maxReplicas": 500}),
        "autoscaling.maxReplicas is above the pool's replica limit",
    ),
    (
        "replicas-over-raised-limit",
        with_spec(replicas=300, replicaLimit=200),
        "replica limit",
    ),
    ("replica-limit-too-high", with_spec(replicaLimit=20000), "spec.replicaLimit"),
    (
        "image-tag-in-repository",
        with_spec(image={"repository": "img:v2"}),
        "image.repository must not contain a tag",
    ),
    (
        "image-digest-in-repository",
        with_spec(image={"repository": "x@sha256:" + "a" * 64}),
        "image.repository must not contain a digest",
    ),
    (
        "image-uppercase-repository",
        with_spec(image={"repository": "Team/Worker"}),
        "image.repository must be an image name",
    ),
    ("image-tag-dot", with_spec(image={"tag": ".v1"}), "image.tag must be a tag"),
    ("image-tag-too-long", with_spec(image={"tag": "v" * 129}), "spec.image.tag"),
    ("image-digest-short", with_spec(image={"digest": "sha256:abc"}), "image.digest must be"),
    ("queue-with-quote", with_spec(taskQueue="it's"), "must not contain a quote"),
    ("queue-with-backslash", with_spec(taskQueue="a\\b"), "must not contain a quote"),
    ("queue-with-newline", with_spec(taskQueue="a\nb"), "must not contain a quote"),
    ("queue-sys", with_spec(taskQueue="/_sys/q"), "Temporal reserves"),
    (
        "volume-reserved-name",
        with_spec(template={"volumes": [{"name": "tmp", "emptyDir": {}}]}),
        "the names tmp, dshm and temporal-tls belong to the operator",
    ),
    (
        "volume-mount-reserved-path",
        with_spec(
            template={
                "volumes": [{"name": "w", "emptyDir": {}}],
                "volumeMounts": [{"name": "w", "mountPath": "/etc/temporal/tls/ca.crt"}],
            }
        ),
        "mount paths /tmp, /dev/shm and /etc/temporal/tls",
    ),
    (
        "volume-mount-reserved-tmp",
        with_spec(
            template={
                "volumes": [{"name": "w", "emptyDir": {}}],
                "volumeMounts": [{"name": "w", "mountPath": "/tmp/"}],
            }
        ),
        "mount paths /tmp, /dev/shm and /etc/temporal/tls",
    ),
    (
        "volume-mount-unknown-volume",
        with_spec(template={"volumeMounts": [{"name": "models", "mountPath": "/models"}]}),
        "must name one of template.volumes",
    ),
    (
        "volume-mount-without-path",
        with_spec(
            template={"volumes": [{"name": "w", "emptyDir": {}}], "volumeMounts": [{"name": "w"}]}
        ),
        "mountPath",
    ),
    (
        "pod-label-value-invalid",
        with_spec(template={"metadata": {"labels": {"team": "a b"}}}),
        "spec.template.metadata.labels.team",
    ),
    (
        "node-selector-value-too-long",
        with_spec(template={"nodeSelector": {"pool": "x" * 64}}),
        "spec.template.nodeSelector.pool",
    ),
    (
        "tls-secret-name-invalid",
        with_spec(connection={"address": "t:7233", "tls": {"secretName": "Bad_Name"}}),
        "spec.connection.tls.secretName is no longer accepted",
    ),
    (
        "service-account-invalid",
        with_spec(template={"serviceAccountName": "a b"}),
        "template.serviceAccountName must be a Kubernetes object name",
    ),
    (
        "tracing-endpoint-no-scheme",
        with_spec(tracing={"endpoint": "otel-collector:4317"}),
        "spec.tracing.endpoint",
    ),
    (
        # found by the hostile suite: a C1 control character reached the workers' env
        "tracing-endpoint-control-character",
        with_spec(tracing={"endpoint": "https://\U00010b54\x93R"}),
        "spec.tracing.endpoint",
    ),
    (
        "tracing-bad-protocol",
        with_spec(tracing={"endpoint": "http://c:4318", "protocol": "http/json"}),
        "spec.tracing.protocol",
    ),
    (
        "tracing-ratio-above-one",
        with_spec(tracing={"endpoint": "http://c:4318", "samplingRatio": 1.5}),
        "spec.tracing.samplingRatio",
    ),
    (
        "tracing-inline-headers",
        with_spec(tracing={"endpoint": "http://c:4318", "headersSecretRef": {"name": "Bad_Name"}}),
        "spec.tracing.headersSecretRef.name must be a Kubernetes object name",
    ),
    (
        "tracing-and-otel-env",
        with_spec(
            tracing={"endpoint": "http://c:4318"},
            env=[{"name": "otel_exporter_otlp_traces_endpoint", "value": "http://other:4318"}],
        ),
        "spec.env must not set the OTEL_* variables that spec.tracing writes",
    ),
]


@pytest.mark.parametrize(("case", "doc", "message"), CASES, ids=[c[0] for c in CASES])
def test_rejected_with_readable_message(
    kube_cluster: Any,
    crd_installed: str,
    namespace: str,
    case: str,
    doc: dict[str, Any],
    message: str,
) -> None:
    assert_rejected(kube_cluster, namespace, case, doc, message)


@pytest.mark.parametrize(
    "doc",
    [
        VALID,
        with_spec(metrics={"serviceMonitor": {"enabled": True}}),
        with_spec(metrics={"serviceMonitor": {"enabled": False}}),
        with_spec(
            connection=None,
            connectionRef={"kind": "ClusterTemporalConnection", "name": "cloud"},
            autoscaling={"engine": "KEDA", "minReplicas": 0, "maxReplicas": 3},
            gpu={"count": 2, "resourceName": "nvidia.com/mig-1g.10gb"},
        ),
        with_spec(image={"repository": "registry.example.com:5000/team/worker", "tag": "_v" * 40}),
        with_spec(image={"repository": "worker", "digest": "sha256:" + "0" * 64}),
        with_spec(env=[{"name": "TWP_LOG_LEVEL", "value": "DEBUG"}, {"name": "A", "value": "1"}]),
        with_spec(replicas=150, replicaLimit=200),
        with_spec(gpu={"count": 1}, rollout={"maxSurge": 1}),
        with_spec(disruptionBudget={"maxUnavailable": "100%"}),
        with_spec(
            tracing={
                "endpoint": "https://otlp.example.com",
                "protocol": "grpc",
                "samplingRatio": 0.1,
                "headersSecretRef": {"name": "otlp-auth"},
            }
        ),
        with_spec(env=[{"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://c:4318"}]),
        with_spec(
            connection={"address": "[::1]:65535"},
            resources={"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": 1}},
            template={
                "tolerations": [{"operator": "Exists"}],
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {
                                    "matchExpressions": [
                                        {"key": "k", "operator": "In", "values": ["v"]}
                                    ]
                                }
                            ]
                        }
                    }
                },
                "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "w"}}],
                "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True}],
            },
        ),
    ],
    ids=[
        "minimal",
        "sm-true",
        "sm-false",
        "cloud-gpu-keda",
        "registry-port-long-tag",
        "digest",
        "runtime-env",
        "raised-replica-limit",
        "gpu-surge",
        "pdb-100-percent",
        "tracing",
        "otel-env-without-tracing",
        "typed-pod-fields",
    ],
)
def test_valid_pools_admitted_with_defaults(
    kube_cluster: Any, crd_installed: str, namespace: str, doc: dict[str, Any]
) -> None:
    kube_cluster.apply(doc, namespace=namespace)
    live = kube_cluster.get("twp", "pool", namespace=namespace)
    if "connection" in doc["spec"]:
        assert live["spec"]["connection"]["namespace"] == "default"  # defaulted by the schema
    else:
        assert live["spec"]["connectionRef"]["kind"] == "ClusterTemporalConnection"
    assert live["spec"]["worker"]["gracefulShutdownSeconds"] == 30
