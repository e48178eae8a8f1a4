"""The 'skip when unchanged' logic behind zero writes per idle resync."""

from __future__ import annotations

from typing import Any

import pytest

from workerpool_operator.reconcile.diff import is_subset, up_to_date, with_hash


@pytest.mark.parametrize(
    ("want", "have", "same"),
    [
        ({"a": 1}, {"a": 1, "b": 2}, True),  # server defaults are ignored
        ({"a": 1}, {"a": 2}, False),  # edited by someone else
        ({"a": 1}, {}, False),  # deleted field
        ({"name": "X", "value": ""}, {"name": "X"}, True),  # server omits empty strings
        ({"a": []}, {}, True),
        ({"m": "1024Mi"}, {"m": "1Gi"}, True),  # canonicalized quantity
        ({"gpu": 2}, {"gpu": "2"}, True),
        ({"cpu": "500m"}, {"cpu": "0.5"}, True),
        ({"cpu": "500m"}, {"cpu": "1"}, False),
        ({"flag": True}, {"flag": "true"}, False),
        ([1, 2], [1, 2, 3], False),
        (
            [{"name": "a", "value": "1"}],
            [{"name": "b", "value": "x"}, {"name": "a", "value": "1"}],
            True,
        ),
        ([{"name": "a", "value": "1"}], [{"name": "a", "value": "2"}], False),
        (
            [{"type": "Ready", "status": "True"}],
            [{"type": "Scaling", "status": "False"}, {"type": "Ready", "status": "True"}],
            True,
        ),
    ],
)
def test_is_subset(want: Any, have: Any, same: bool) -> None:
    assert is_subset(want, have) is same


def test_up_to_date_needs_hash_and_fields() -> None:
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"a": 1}}
    desired = with_hash(obj)
    assert up_to_date(desired, desired)
    assert not up_to_date(desired, None)
    edited = {**desired, "spec": {"a": 2}}
    assert not up_to_date(desired, edited)
    # a field removed from the spec keeps the live subset true but changes the hash
    smaller = with_hash({**obj, "spec": {}})
    assert not up_to_date(smaller, desired)
