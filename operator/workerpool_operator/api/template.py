"""Pod-level overrides of a pool: pod metadata, scheduling, volumes, the disruption budget,
the rollout strategy and the NetworkPolicy."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from worker_runtime.contract import SHM_MOUNT_PATH, TLS_MOUNT_PATH
from workerpool_operator.api.common import (
    EMPTY_DEFAULT,
    LABEL_VALUES,
    PERCENT_UP_TO_100,
    IntOrString,
    KubeList,
    KubeObjectList,
    LabelValue,
    Model,
    NamespaceSelector,
    cel,
    cel_strings,
    k8s_field,
    name_field,
    toleration_rules,
)

# Volumes and mount paths the renderer adds to every pod (scratch /tmp, GPU /dev/shm, TLS Secret).
RESERVED_VOLUMES = ("tmp", "dshm", "temporal-tls")
RESERVED_MOUNT_PATHS = ("/tmp", SHM_MOUNT_PATH, TLS_MOUNT_PATH)


INT32_MAX = 2**31 - 1


def int_or_percent(what: str, *, up_to_100: bool) -> tuple[str, str]:
    """CEL: a non-negative count or a percentage (bounded to 100% where Kubernetes bounds it)."""
    # A count is an int32 in the Deployment: a larger one would pass here and be refused there.
    count = f"self >= 0 && self <= {INT32_MAX}"
    if up_to_100:
        return (
            f"type(self) == int ? {count} : self.matches(r'{PERCENT_UP_TO_100}')",
            f"{what} must be a pod count (0 to {INT32_MAX}) or a percentage from 0% to 100%, "
            "e.g. 1 or 25%",
        )
    return (
        f"type(self) == int ? {count} : self.matches(r'^[0-9]{{1,9}}%$')",
        f"{what} must be a pod count (0 to {INT32_MAX}) or a percentage, e.g. 1 or 25%",
    )


class PodMetadata(Model):
    labels: dict[str, LabelValue] | None = Field(default=None, max_length=64)
    """Extra labels on the pods (the operator's own labels win on a clash)."""
    annotations: dict[str, str] | None = Field(default=None, max_length=64)
    """Extra annotations on the pods."""


_RESERVED_PATHS = "|".join(p.strip("/").replace("/", "/+") for p in RESERVED_MOUNT_PATHS)


class PodTemplateSpec(Model):
    """Pod-level overrides merged into the rendered Deployment."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "!has(self.volumeMounts) || self.volumeMounts.all(m, has(self.volumes) && "
                "self.volumes.exists(v, v.name == m.name))",
                "template.volumeMounts[].name must name one of template.volumes[].name",
            ),
        )
    )

    metadata: PodMetadata | None = None
    """Labels and annotations added to the pods (not to the Deployment)."""
    node_selector: dict[str, str] | None = Field(
        default=None,
        json_schema_extra=k8s_field(
            "PodSpec.nodeSelector", max_properties=64, overlay=LABEL_VALUES
        ),
    )
    tolerations: KubeList | None = Field(
        default=None,
        json_schema_extra=k8s_field(
            "PodSpec.tolerations", *toleration_rules("template.tolerations"), max_items=32
        ),
    )
    affinity: dict[str, Any] | None = Field(
        default=None, json_schema_extra=k8s_field("PodSpec.affinity")
    )
    topology_spread_constraints: KubeList | None = Field(
        default=None,
        json_schema_extra=k8s_field(
            "PodSpec.topologySpreadConstraints",
            (
                "self.all(c, c.whenUnsatisfiable in ['DoNotSchedule', 'ScheduleAnyway'])",
                "template.topologySpreadConstraints[].whenUnsatisfiable must be DoNotSchedule or "
                "ScheduleAnyway",
            ),
            (
                "self.all(c, c.maxSkew > 0)",
                "template.topologySpreadConstraints[].maxSkew must be greater than 0",
            ),
            (
                "self.all(c, !has(c.minDomains) || (c.minDomains > 0 && "
                "c.whenUnsatisfiable == 'DoNotSchedule'))",
                "template.topologySpreadConstraints[].minDomains must be greater than 0 and "
                "needs whenUnsatisfiable: DoNotSchedule",
            ),
            max_items=16,
        ),
    )
    service_account_name: str | None = name_field("template.serviceAccountName", default=None)
    """ServiceAccount the pods run as instead of the pool's own: only one the cluster admin
    granted (operator setting grants.serviceAccounts), else the pool is InvalidSpec."""
    priority_class_name: str | None = name_field("template.priorityClassName", default=None)
    """PriorityClass of the pods."""
    image_pull_secrets: KubeList | None = Field(
        default=None, json_schema_extra=k8s_field("PodSpec.imagePullSecrets", max_items=16)
    )
    volumes: KubeList | None = Field(
        default=None,
        description=(
            "Extra pod volumes (core/v1 Volume), e.g. a PersistentVolumeClaim holding model "
            "weights for worker_runtime.llm.gpu. Names tmp, dshm and temporal-tls are taken."
        ),
        json_schema_extra=k8s_field(
            "PodSpec.volumes",
            (
                f"self.all(v, !(v.name in {cel_strings(RESERVED_VOLUMES)}))",
                "template.volumes: the names tmp, dshm and temporal-tls belong to the operator "
                "(scratch /tmp, GPU /dev/shm, TLS Secret); give your volume another name",
            ),
            (
                "self.all(v, !has(v.gitRepo) && !has(v.flexVolume) && (!has(v.projected) || "
                "!has(v.projected.sources) || "
                "v.projected.sources.all(s, !has(s.serviceAccountToken))))",
                "template.volumes: projected serviceAccountToken, gitRepo and flexVolume volumes "
                "are refused: a token would give the workers an API identity (the pool's "
                "ServiceAccount has none on purpose), gitRepo and flexVolume run code on the node; "
                "use a Secret, a ConfigMap or a PersistentVolumeClaim instead",
            ),
            max_items=32,
            overlay={
                "items": {
                    "properties": {
                        "name": {"maxLength": 63},
                        "projected": {"properties": {"sources": {"maxItems": 16}}},
                    }
                }
            },
        ),
    )
    volume_mounts: KubeList | None = Field(
        default=None,
        description=(
            "Mounts of `volumes` into the worker container (core/v1 VolumeMount), e.g. "
            "{name: models, mountPath: /models, readOnly: true}. The paths /tmp, /dev/shm and "
            "/etc/temporal/tls (and below it) are taken."
        ),
        json_schema_extra=k8s_field(
            "Container.volumeMounts",
            (
                f"self.all(m, !(m.name in {cel_strings(RESERVED_VOLUMES)}))",
                "template.volumeMounts: the volumes tmp, dshm and temporal-tls belong to the "
                "operator; mount one of your own template.volumes",
            ),
            (
                f"self.all(m, !m.mountPath.matches(r'^/+({_RESERVED_PATHS})/*$') && "
                f"!m.mountPath.matches(r'^/+{TLS_MOUNT_PATH.strip('/').replace('/', '/+')}/'))",
                "template.volumeMounts: the mount paths /tmp, /dev/shm and /etc/temporal/tls (and "
                "below it) belong to the operator; mount elsewhere, e.g. /models",
            ),
            max_items=32,
            overlay={
                "items": {
                    "properties": {"name": {"maxLength": 63}, "mountPath": {"maxLength": 1024}}
                }
            },
        ),
    )


class DisruptionBudgetSpec(Model):
    """PodDisruptionBudget for the pool's pods; exactly one of the two fields."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "has(self.maxUnavailable) != has(self.minAvailable)",
                "disruptionBudget needs exactly one of maxUnavailable or minAvailable",
            ),
        )
    )

    max_unavailable: IntOrString | None = Field(
        default=None,
        json_schema_extra=k8s_field(
            "PodDisruptionBudgetSpec.maxUnavailable",
            int_or_percent("disruptionBudget.maxUnavailable", up_to_100=True),
        ),
    )
    min_available: IntOrString | None = Field(
        default=None,
        json_schema_extra=k8s_field(
            "PodDisruptionBudgetSpec.minAvailable",
            int_or_percent("disruptionBudget.minAvailable", up_to_100=True),
        ),
    )


class RolloutSpec(Model):
    """RollingUpdate strategy of the Deployment."""

    max_surge: IntOrString | None = Field(
        default=None,
        description="Default 25% (GPU pools: 0, so no extra GPU is needed to roll).",
        json_schema_extra=k8s_field(
            "RollingUpdateDeployment.maxSurge",
            int_or_percent("rollout.maxSurge", up_to_100=False),
        ),
    )
    max_unavailable: IntOrString | None = Field(
        default=None,
        description="Default 0 (GPU pools: 1). Not 0 together with maxSurge 0.",
        json_schema_extra=k8s_field(
            "RollingUpdateDeployment.maxUnavailable",
            int_or_percent("rollout.maxUnavailable", up_to_100=True),
        ),
    )


class PoolNetworkPolicySpec(Model):
    """A NetworkPolicy for the pool's pods: ingress only to the metrics port from the selected
    namespaces, egress only to the Temporal frontend and DNS, plus `extraEgress`."""

    metrics_from_namespaces: NamespaceSelector = Field(
        default_factory=NamespaceSelector,
        description=(
            "Namespaces (label selector) whose pods may scrape the metrics port; `{}` (the "
            "default) selects every namespace. Nothing else may connect to the workers."
        ),
        json_schema_extra=EMPTY_DEFAULT,
    )
    extra_egress: KubeObjectList | None = Field(
        default=None,
        max_length=16,
        description=(
            "More egress rules (networking.k8s.io/v1 NetworkPolicyEgressRule), e.g. to a model "
            "store or an LLM API. Temporal (the connection's address: an IP is matched exactly, "
            "a <svc>.<namespace>.svc name by namespace, any other host name by port only) and "
            "DNS (port 53) are always allowed."
        ),
    )
