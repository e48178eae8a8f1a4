"""testbed/audit.py on a sample recorded from the bed's API server (tests/unit/fixtures/audit).

The sample was recorded while, in namespace audit-sample: kubectl created the namespace, the
operator's client created a pool, server-side applied a Deployment and the pool's status under
the field manager workerpool-operator, the same client applied the Deployment again under the
field manager intruder, and kubectl deleted the Deployment; the bed's own controllers
(ReplicaSets, Pods, Events) wrote meanwhile, all as the bed's admin user. Two lines were added
by hand: a read and the RequestReceived stage of a write.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.audit import AuditLog, Write, count, foreign_writers, parse

SAMPLE = Path(__file__).parent / "fixtures" / "audit" / "sample.log"
NS = "audit-sample"


@pytest.fixture
def writes() -> list[Write]:
    return list(parse(SAMPLE.read_text().splitlines()))


def test_only_completed_writes_are_read(writes: list[Write]) -> None:
    assert writes
    assert {w.verb for w in writes} <= {"create", "update", "patch", "delete", "deletecollection"}
    raw = SAMPLE.read_text().splitlines()
    # the sample also holds a read and a RequestReceived stage (added to it): both skipped
    assert len(writes) < len(raw)


def test_writes_counted_by_resource_verb_and_field_manager(writes: list[Write]) -> None:
    mine = [w for w in writes if w.namespace == NS]
    counts = count(mine, "resource", "verb", "field_manager")
    assert counts[("deployments", "patch", "workerpool-operator")] == 1
    assert counts[("deployments", "patch", "intruder")] == 1
    assert counts[("temporalworkerpools/status", "patch", "workerpool-operator")] == 1
    assert counts[("deployments", "delete", "")] == 1


def test_a_time_window_keeps_only_its_writes(tmp_path: Path, writes: list[Write]) -> None:
    log = tmp_path / "audit.log"
    log.write_text(SAMPLE.read_text())
    reader = AuditLog(log)
    mine = sorted((w for w in writes if w.namespace == NS), key=lambda w: w.at)
    first, last = mine[0].at, mine[-1].at
    inside = reader.writes(since=first, until=last, namespaces={NS}, settle_s=0)
    assert mine[0] in inside
    assert mine[-1] not in inside  # until is exclusive
    assert reader.writes(since=last + 1, namespaces={NS}, settle_s=0) == []


def test_lines_appended_later_are_read_and_a_partial_line_waits(tmp_path: Path) -> None:
    lines = SAMPLE.read_text().splitlines(keepends=True)
    log = tmp_path / "audit.log"
    log.write_text("".join(lines[:-1]) + lines[-1][:20])  # the last line half written
    reader = AuditLog(log)
    before = len(reader.writes(settle_s=0))
    with log.open("a") as handle:
        handle.write(lines[-1][20:])
    after = reader.writes(settle_s=0)
    assert len(after) == len(list(parse(lines)))
    assert len(after) >= before


def test_foreign_writers_leave_out_the_operator_the_caller_and_the_cluster(
    writes: list[Write],
) -> None:
    mine = [w for w in writes if w.namespace == NS]
    user = next(w.user for w in mine if w.field_manager == "workerpool-operator")
    found = foreign_writers(mine, operator_user="nobody", own_managers={"workerpool-operator"})
    # the controllers' ReplicaSets, Pods and Deployment statuses are the cluster's own
    assert found == {
        f"{user} (intruder)": 1,
        f"{user} (kubectl)": 1,  # the delete
        f"{user} (workerpool-operator)": 1,  # the create named no field manager
    }
    # the operator under test is told apart by its user (the bench gives it its own)
    assert not foreign_writers(mine, operator_user=user)


def test_missing_log_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="restart it"):
        AuditLog(tmp_path / "none.log").writes(settle_s=0)
