"""SSM helpers: batching, success, failure, timeout, the InvocationDoesNotExist race."""

from __future__ import annotations

import random

import pytest
from control_fakes import Aws

from algostack.control import ssm as ssmh
from algostack.control.fakes import Outcome
from algostack.core.backoff import Backoff


def fixed() -> Backoff:
    return Backoff(base=2.0, factor=1.0, cap=2.0, floor=2.0, rng=random.Random(0))


def run(aws: Aws, ids: list[str], seconds: float = 300, **kw: object) -> dict[str, ssmh.Invocation]:
    return ssmh.run_script(
        aws.clients.ssm,
        ids,
        "echo one\necho two\n",
        deadline=aws.time.deadline(seconds),
        runtime=aws.time.runtime,
        backoff=fixed(),
        **kw,
    )  # type: ignore[arg-type]


def test_script_commands_keeps_lines_and_rejects_empty() -> None:
    assert ssmh.script_commands("a\r\nb <<EOF\nx\nEOF\n\n") == ["a", "b <<EOF", "x", "EOF"]
    with pytest.raises(ValueError, match="empty"):
        ssmh.script_commands("\n \n")


def test_run_script_success_collects_output(aws: Aws) -> None:
    aws.ssm_fake.outcome = lambda iid, s: Outcome(stdout=f"hello {iid}", duration_s=5)
    out = run(aws, ["i-1", "i-2"])
    assert [out[i].ok for i in ("i-1", "i-2")] == [True, True]
    assert out["i-2"].stdout == "hello i-2" and out["i-2"].exit_code == 0
    (cmd,) = aws.ssm_fake.commands.values()
    assert cmd.params["Parameters"]["commands"] == ["echo one", "echo two"]
    assert int(cmd.params["Parameters"]["executionTimeout"][0]) <= 300


def test_run_script_batches_fifty_instances_per_send(aws: Aws) -> None:
    ids = [f"i-{k:03d}" for k in range(120)]
    out = run(aws, ids)
    assert all(inv.ok for inv in out.values())
    assert [len(c.instances) for c in aws.ssm_fake.commands.values()] == [50, 50, 20]
    # Polling is per command, not per instance.
    assert aws.ssm_fake.calls["ListCommandInvocations"] == 3


def test_run_script_failure_reports_exit_code_and_stderr(aws: Aws) -> None:
    aws.ssm_fake.outcome = lambda iid, s: Outcome("Failed", 127, "", "run.sh: not found")
    (inv,) = run(aws, ["i-1"]).values()
    assert not inv.ok and inv.status == "Failed" and inv.exit_code == 127
    assert inv.summary()["stderr"] == "run.sh: not found"


def test_run_script_still_running_at_deadline_reported(aws: Aws) -> None:
    aws.ssm_fake.outcome = lambda iid, s: Outcome(duration_s=10_000)
    (inv,) = run(aws, ["i-1"], seconds=60).values()
    assert not inv.ok and inv.status == "InProgress"
    assert "still InProgress at the controller's deadline" in (inv.error or "")
    assert aws.time.now - 1000 <= 60


def test_run_script_aws_timed_out_status_is_failure(aws: Aws) -> None:
    aws.ssm_fake.outcome = lambda iid, s: Outcome("TimedOut", -1, "partial", "")
    (inv,) = run(aws, ["i-1"]).values()
    assert not inv.ok and inv.status == "TimedOut"


def test_run_script_invocation_does_not_exist_race_retried(aws: Aws) -> None:
    aws.ssm_fake.unlisted_polls = 2
    aws.ssm_fake.missing_gets = 2
    (inv,) = run(aws, ["i-1"]).values()
    assert inv.ok
    assert aws.ssm_fake.calls["GetCommandInvocation"] == 3


def test_run_script_agent_not_registered_send_retried(aws: Aws) -> None:
    aws.ssm_fake.send_errors = ["InvalidInstanceId", "InvalidInstanceId"]
    (inv,) = run(aws, ["i-1"]).values()
    assert inv.ok and aws.ssm_fake.calls["SendCommand"] == 3


def test_run_script_send_refused_marks_every_instance(aws: Aws) -> None:
    aws.ssm_fake.send_errors = ["AccessDeniedException"]
    out = run(aws, ["i-1", "i-2"])
    assert [out[i].status for i in ("i-1", "i-2")] == ["NotSent", "NotSent"]
    assert "AccessDeniedException" in (out["i-1"].error or "")


def test_run_script_output_truncated_as_aws_and_to_s3(aws: Aws) -> None:
    aws.ssm_fake.outcome = lambda iid, s: Outcome(stdout="x" * 30_000, stderr="e" * 9_000)
    (inv,) = run(
        aws, ["i-1"], output_bucket="algo-ssm-out", output_prefix="ssm-output/dev/ingest"
    ).values()
    assert len(inv.stdout) == ssmh.STDOUT_LIMIT and len(inv.stderr) == ssmh.STDERR_LIMIT
    (cmd,) = aws.ssm_fake.commands.values()
    assert cmd.params["OutputS3BucketName"] == "algo-ssm-out"
    assert cmd.params["OutputS3KeyPrefix"] == "ssm-output/dev/ingest"


def test_redact_masks_passwords_and_alpaca_keys() -> None:
    text = 'password=hunter2 {"secret": "abc"} key PKABCDEFGHIJKLMNOPQR'
    out = ssmh.redact(text)
    assert "hunter2" not in out and "abc" not in out and "PKABCDEFGHIJKLMNOPQR" not in out
