"""The worker tuning fields are defined once (the env contract) and mean the same everywhere."""

from __future__ import annotations

import inspect

from temporalio.worker import Worker

from worker_runtime import contract
from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.render.deployment import runtime_env


def test_every_tuning_field_is_a_spec_field_a_setting_and_a_worker_option() -> None:
    worker_options = inspect.signature(Worker.__init__).parameters
    for name in contract.WORKER_TUNING_FIELDS:
        assert name in api.WorkerTuning.model_fields, name
        assert name in contract.RuntimeSettings.model_fields, name
        assert name in worker_options, name


def test_the_renderer_passes_every_tuning_field_as_its_env_variable() -> None:
    values = {"max_concurrent_activities": 7, "max_concurrent_workflow_tasks": 9,
              "max_activities_per_second": 2.5, "max_task_queue_activities_per_second": 4.0,
              "max_cached_workflows": 11}  # fmt: skip
    assert set(values) == set(contract.WORKER_TUNING_FIELDS)
    pool = api.TemporalWorkerPool.from_body(
        {
            "metadata": {"name": "p", "namespace": "n"},
            "spec": {
                "connection": {"address": "t:7233"},
                "taskQueue": "q",
                "workflows": ["a:W"],
                "worker": {
                    api.WorkerTuning.model_fields[k].alias or k: v for k, v in values.items()
                },
            },
        }
    )
    env = {e["name"]: e.get("value") for e in runtime_env(pool)}
    for name, value in values.items():
        assert env[contract.env_var(name)] == str(value)


def test_versioning_settings_come_in_a_set() -> None:
    """A half-set version would register the worker unversioned or under the wrong name."""
    import pytest
    from pydantic import ValidationError

    from worker_runtime.contract import RuntimeSettings

    base = {"temporal_address": "t:7233", "task_queue": "q"}
    assert not RuntimeSettings.model_validate(base).versioned
    full = RuntimeSettings.model_validate(
        {
            **base,
            "worker_deployment_name": "ns/p",
            "worker_build_id": "b1",
            "default_versioning_behavior": "AutoUpgrade",
        }
    )
    assert full.versioned
    assert full.default_versioning_behavior == "AutoUpgrade"
    with pytest.raises(ValidationError, match="TWP_WORKER_DEPLOYMENT_NAME and TWP_WORKER_BUILD_ID"):
        RuntimeSettings.model_validate({**base, "worker_build_id": "b1"})
    with pytest.raises(ValidationError, match="TWP_DEFAULT_VERSIONING_BEHAVIOR needs"):
        RuntimeSettings.model_validate({**base, "default_versioning_behavior": "Pinned"})
