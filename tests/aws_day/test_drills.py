"""Fault drills on the emulated desk (after the two days of test_aws_day.py): each breaks
one thing outside the project, the controller must fail with a message naming the host and
the cause (nothing downstream runs), and a re-invocation after the fix must converge."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from algostack.testing.aws.day import AwsDay, Invoked
from algostack.testing.aws.gitserver import keypair

pytestmark = [pytest.mark.aws_day, pytest.mark.timeout(900)]

INGEST = "alpaca-websocket-ingest-qa"


def _ingest(desk: AwsDay, day: date, timeout_s: float = 600) -> Invoked:
    return desk.invoke_ingest(day, timeout_s=timeout_s)


def _trading(desk: AwsDay, day: date, ingest: Invoked) -> Invoked:
    return desk.invoke_trading(day, ingest)


def _fails(inv: Invoked, *needles: str) -> str:
    assert not inv.ok, f"{inv.name} succeeded: {json.dumps(inv.result)[:500]}"
    assert inv.error is not None
    for needle in needles:
        assert needle.lower() in inv.error.lower(), f"{needle!r} not in: {inv.error[:3000]}"
    return inv.error


def test_drill_branch_that_does_not_exist(desk: AwsDay) -> None:
    assert desk.git is not None
    day = date(2026, 12, 2)
    desk.git.delete_branch(desk.branch)
    try:
        _fails(_ingest(desk, day), INGEST, desk.branch)
    finally:
        desk.git.set_branch(desk.branch)
    assert _ingest(desk, day).ok


def test_drill_wrong_deploy_key(desk: AwsDay, tmp_path: Any) -> None:
    assert desk.cloud is not None and desk.git is not None
    day = date(2026, 12, 3)
    sm = desk.cloud.client("secretsmanager")
    wrong, _ = keypair(tmp_path / "wrong_key", "not-the-deploy-key")
    sm.put_secret_value(SecretId="github/ssh-key", SecretString=wrong)
    try:
        _fails(_ingest(desk, day), INGEST, "permission denied")
    finally:
        sm.put_secret_value(SecretId="github/ssh-key", SecretString=desk.git.deploy_key)
    assert _ingest(desk, day).ok


def test_drill_missing_secret(desk: AwsDay) -> None:
    assert desk.cloud is not None
    day = date(2026, 12, 4)
    sm = desk.cloud.client("secretsmanager")
    name = f"alpaca/{desk.env}"
    value = sm.get_secret_value(SecretId=name)["SecretString"]
    sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    try:
        _fails(_ingest(desk, day), INGEST, name)
    finally:
        sm.create_secret(Name=name, SecretString=value)
    assert _ingest(desk, day).ok


def test_drill_trader_unit_crashes_at_start(desk: AwsDay) -> None:
    assert desk.cloud is not None
    day = date(2026, 12, 7)
    s3 = desk.cloud.client("s3")
    prefix = desk.model_prefixes[0]
    keys = [
        o["Key"] for o in s3.list_objects_v2(Bucket=desk.bucket, Prefix=prefix + "-")["Contents"]
    ]
    original = {k: s3.get_object(Bucket=desk.bucket, Key=k)["Body"].read() for k in keys}
    ingest = _ingest(desk, day)
    assert ingest.ok, ingest.error
    for key in keys:
        s3.put_object(Bucket=desk.bucket, Key=key, Body=b"not a model")
    try:
        host = desk.spec(prefix).instance_name(desk.env)
        error = _fails(_trading(desk, day, ingest), host, "algostack-trader")
        others = [p for p in desk.model_prefixes if p != prefix]
        assert others, "the drill needs a second model"
    finally:
        for key, body in original.items():
            s3.put_object(Bucket=desk.bucket, Key=key, Body=body)
    assert "\n" in error or "journal" in error.lower() or "log" in error.lower()
    again = _trading(desk, day, ingest)
    assert again.ok, again.error


def test_drill_status_checks_never_pass(desk: AwsDay) -> None:
    assert desk.cloud is not None
    day = date(2026, 12, 8)
    machine = desk.cloud.by_name(INGEST)
    desk.cloud.impaired.add(machine.instance_id)
    try:
        _fails(_ingest(desk, day, timeout_s=40), machine.instance_id, "status")
    finally:
        desk.cloud.impaired.discard(machine.instance_id)
    assert _ingest(desk, day).ok


def test_drill_ssm_command_times_out(desk: AwsDay) -> None:
    assert desk.git is not None and desk.cloud is not None
    day = date(2026, 12, 9)
    desk.git.stall()
    try:
        error = _fails(_ingest(desk, day, timeout_s=75), INGEST)
        assert "timedout" in error.lower().replace(" ", "") or "timed out" in error.lower()
    finally:
        desk.git.resume()
    assert _ingest(desk, day).ok
    shutdown = desk.end_day(day)
    assert shutdown.ok, shutdown.error
    assert {m.moto._state.name for m in desk.cloud.machines.values()} == {"stopped"}
