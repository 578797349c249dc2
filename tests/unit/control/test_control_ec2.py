"""EC2 helpers: lookup by Name tag, batched start, and the health wait's every outcome."""

from __future__ import annotations

import random

import pytest
from control_fakes import Aws

from algostack.control import ec2 as ec2h
from algostack.control.failures import InstanceNotFoundError
from algostack.core.backoff import Backoff


def fixed() -> Backoff:
    return Backoff(base=5.0, factor=1.0, cap=5.0, floor=5.0, rng=random.Random(0))


def test_find_one_exact_name_found(aws: Aws) -> None:
    (iid,) = aws.launch("alpaca-websocket-ingest-dev", role="ingest")
    aws.launch("alpaca-websocket-ingest-qa", role="ingest", env="qa")
    inst = ec2h.find_one(aws.clients.ec2, "alpaca-websocket-ingest-dev", "dev")
    assert inst.id == iid and inst.state == "running" and inst.tags["Role"] == "ingest"


def test_find_one_not_found_raises_naming_filter(aws: Aws) -> None:
    with pytest.raises(InstanceNotFoundError, match="Name='alpaca-websocket-ingest-dev'"):
        ec2h.find_one(aws.clients.ec2, "alpaca-websocket-ingest-dev", "dev")


def test_find_one_several_found_raises_listing_them(aws: Aws) -> None:
    ids = aws.launch("alpaca-websocket-ingest-dev", role="ingest", count=2)
    with pytest.raises(InstanceNotFoundError, match="2 instances match") as info:
        ec2h.find_one(aws.clients.ec2, "alpaca-websocket-ingest-dev", "dev")
    assert all(i in str(info.value) for i in ids)


def test_find_instances_wildcard_scoped_to_environment(aws: Aws) -> None:
    a = aws.launch("trading-server-dev-AAPL-xgb-1")
    b = aws.launch("trading-server-dev-MSFT-lin-2", state="stopped")
    aws.launch("trading-server-qa-AAPL-xgb-1", env="qa")
    aws.launch("trading-server-dev-MSFT-lin-3", env="qa")  # wrong Environment tag
    found = ec2h.find_instances(aws.clients.ec2, "trading-server-dev-*", "dev")
    assert [i.id for i in found] == a + b
    assert [i.state for i in found] == ["running", "stopped"]


def test_start_instances_batches_of_fifty(aws: Aws) -> None:
    ids = aws.launch("trading-server-dev-X-y-1", count=120, state="stopped")
    res = ec2h.start_instances(aws.clients.ec2, ids)
    assert sorted(res.accepted) == sorted(ids)
    assert [len(c) for c in aws.overlay.start_calls] == [50, 50, 20]


def test_start_instances_refused_batch_isolates_the_bad_instance(aws: Aws) -> None:
    ids = aws.launch("trading-server-dev-X-y-1", count=3, state="stopped")
    aws.overlay.start_errors[ids[1]] = ["InsufficientInstanceCapacity"] * 2
    res = ec2h.start_instances(aws.clients.ec2, ids)
    assert sorted(res.accepted) == sorted([ids[0], ids[2]])
    assert "no capacity" in res.capacity[ids[1]]


def test_ensure_healthy_from_pending_waits_for_checks_and_agent(aws: Aws) -> None:
    (iid,) = aws.launch("trading-server-dev-X-y-1")
    aws.overlay.statuses[iid] = [
        ("pending", "not-applicable", "not-applicable"),
        ("running", "initializing", "initializing"),
        ("running", "ok", "ok"),
    ]
    aws.ssm_fake.agent_delay_s = 10
    inst = ec2h.find_instances(aws.clients.ec2, "trading-server-dev-*")
    out = ec2h.ensure_healthy(
        aws.clients.ec2,
        aws.clients.ssm,
        inst,
        aws.time.deadline(600),
        aws.time.runtime,
        backoff=fixed(),
    )
    assert out[iid].ok and out[iid].agent == "Online" and not out[iid].started
    assert aws.time.slept == [5.0] * 4


def test_ensure_healthy_from_stopping_starts_once_stopped(aws: Aws) -> None:
    (iid,) = aws.launch("trading-server-dev-X-y-1", state="stopped")
    aws.overlay.describe_state[iid] = "stopping"
    aws.overlay.statuses[iid] = [
        ("stopping", "not-applicable", "not-applicable"),
        ("stopped", "not-applicable", "not-applicable"),
        ("pending", "not-applicable", "not-applicable"),
        ("running", "ok", "ok"),
    ]
    inst = ec2h.find_instances(aws.clients.ec2, "trading-server-dev-*")
    assert inst[0].state == "stopping"
    out = ec2h.ensure_healthy(
        aws.clients.ec2,
        aws.clients.ssm,
        inst,
        aws.time.deadline(600),
        aws.time.runtime,
        backoff=fixed(),
    )
    assert out[iid].ok and out[iid].started
    assert aws.overlay.start_calls == [[iid]]


def test_ensure_healthy_start_refused_while_stopping_retried(aws: Aws) -> None:
    (iid,) = aws.launch("trading-server-dev-X-y-1", state="stopped")
    aws.overlay.start_errors[iid] = ["IncorrectInstanceState"]
    inst = ec2h.find_instances(aws.clients.ec2, "trading-server-dev-*")
    out = ec2h.ensure_healthy(
        aws.clients.ec2,
        aws.clients.ssm,
        inst,
        aws.time.deadline(600),
        aws.time.runtime,
        backoff=fixed(),
    )
    assert out[iid].ok and len(aws.overlay.start_calls) == 2


def test_ensure_healthy_fall_back_to_stopped_reports_reason_and_kms_hint(aws: Aws) -> None:
    (iid,) = aws.launch("trading-server-dev-X-y-1", state="stopped")
    aws.overlay.statuses[iid] = [
        ("pending", "not-applicable", "not-applicable"),
        ("stopped", "not-applicable", "not-applicable"),
    ]
    aws.overlay.reasons[iid] = "Client.InternalError: Client error on launch"
    inst = ec2h.find_instances(aws.clients.ec2, "trading-server-dev-*")
    out = ec2h.ensure_healthy(
        aws.clients.ec2,
        aws.clients.ssm,
        inst,
        aws.time.deadline(600),
        aws.time.runtime,
        backoff=fixed(),
    )
    h = out[iid]
    assert not h.ok and "returned to stopped after start" in (h.error or "")
    assert "Client error on launch" in (h.error or "") and "kms:CreateGrant" in (h.error or "")
    assert aws.time.now - 1000 < 60  # failed fast, did not wait for the deadline


def test_ensure_healthy_times_out_before_deadline(aws: Aws) -> None:
    (iid,) = aws.launch("trading-server-dev-X-y-1")
    aws.overlay.statuses[iid] = [("running", "initializing", "initializing")]
    inst = ec2h.find_instances(aws.clients.ec2, "trading-server-dev-*")
    deadline = aws.time.deadline(60)
    out = ec2h.ensure_healthy(
        aws.clients.ec2, aws.clients.ssm, inst, deadline, aws.time.runtime, backoff=fixed()
    )
    assert not out[iid].ok and "before the deadline" in (out[iid].error or "")
    assert "initializing/initializing" in (out[iid].error or "")
    assert aws.time.now <= deadline.end


def test_ensure_healthy_capacity_retried_then_reported_at_deadline(aws: Aws) -> None:
    (iid,) = aws.launch("trading-server-dev-X-y-1", state="stopped")
    aws.overlay.start_errors[iid] = ["InsufficientInstanceCapacity"] * 100
    inst = ec2h.find_instances(aws.clients.ec2, "trading-server-dev-*")
    out = ec2h.ensure_healthy(
        aws.clients.ec2,
        aws.clients.ssm,
        inst,
        aws.time.deadline(30),
        aws.time.runtime,
        backoff=fixed(),
    )
    assert not out[iid].ok and "InsufficientInstanceCapacity" in (out[iid].error or "")
    assert len(aws.overlay.start_calls) >= 2


def test_ensure_healthy_many_instances_one_status_call_per_hundred(aws: Aws) -> None:
    ids = aws.launch("trading-server-dev-X-y-1", count=150)
    calls: list[str] = []
    aws.clients.ec2.meta.events.register(
        "before-call.ec2.DescribeInstanceStatus", lambda **kw: calls.append("s")
    )
    inst = ec2h.find_instances(aws.clients.ec2, "trading-server-dev-*")
    out = ec2h.ensure_healthy(
        aws.clients.ec2,
        aws.clients.ssm,
        inst,
        aws.time.deadline(60),
        aws.time.runtime,
        backoff=fixed(),
    )
    assert all(out[i].ok for i in ids)
    assert len(calls) == 2 and aws.ssm_fake.calls["DescribeInstanceInformation"] == 3
