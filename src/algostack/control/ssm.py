"""SSM helpers: run a script on many instances in one SendCommand, wait, collect the results.

Stdlib + boto3 only. Polling lists invocations per command (one call per 50 instances); the
full output of each instance is read once at the end, concurrently.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypedDict, Unpack

from botocore.exceptions import ClientError

from algostack.control.ec2 import chunks, error_code, error_message, retryable_codes, unsupported
from algostack.control.failures import PendingError
from algostack.control.runtime import Deadline, Runtime, retry
from algostack.core.backoff import Backoff
from algostack.errors import RetryableError

log = logging.getLogger("algostack.control.ssm")

DOCUMENT = "AWS-RunShellScript"
SEND_BATCH = 50  # SendCommand accepts at most 50 instance ids
STDOUT_LIMIT = 24_000  # what GetCommandInvocation returns at most (the rest only in S3)
STDERR_LIMIT = 8_000
TERMINAL = frozenset({"Success", "Failed", "Cancelled", "TimedOut"})
MIN_DELIVERY_TIMEOUT_S = 30  # SendCommand's TimeoutSeconds minimum
FETCH_WORKERS = 8
# Agent not registered yet (status checks can pass first): retry SendCommand until the deadline.
RETRY_SEND_CODES = frozenset({"InvalidInstanceId", "ThrottlingException"})
# GetCommandInvocation can lag SendCommand/ListCommandInvocations: retry until the deadline.
RETRY_GET_CODES = frozenset({"InvocationDoesNotExist"})

_SECRET_RE = re.compile(
    r"(?i)((?:secret|password|passwd|token|key_id|api_key|apca-api-[a-z-]+)\"?\s*[:=]\s*\"?)"
    r"([^\s\",}]+)"
)
_ALPACA_KEY_RE = re.compile(r"\b(?:PK|AK|CK)[A-Z0-9]{16,20}\b")


def redact(text: str) -> str:
    """Mask anything that looks like a secret (``password=...``, Alpaca key ids)."""
    return _ALPACA_KEY_RE.sub("***", _SECRET_RE.sub(lambda m: m.group(1) + "***", text))


def script_commands(script: str) -> list[str]:
    """Split a shell script into AWS-RunShellScript's ``commands`` (the agent rejoins them
    with newlines into one script, so heredocs and functions survive)."""
    lines = script.replace("\r\n", "\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if not any(line.strip() for line in lines):
        raise ValueError("the script is empty")
    return lines


@dataclass
class Invocation:
    """The outcome of one command on one instance."""

    instance_id: str
    command_id: str | None = None
    status: str = "Pending"
    status_details: str = ""
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    stdout_url: str | None = None
    stderr_url: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the command ran to the end with exit code 0."""
        return self.error is None and self.status == "Success" and self.exit_code == 0

    def summary(self, output_limit: int = STDOUT_LIMIT) -> dict[str, Any]:
        """A JSON-safe view; output keeps its last ``output_limit`` characters, redacted."""
        return {
            "command_id": self.command_id,
            "status": self.status,
            "status_details": self.status_details,
            "exit_code": self.exit_code,
            "stdout": redact(_tail(self.stdout, output_limit)),
            "stderr": redact(_tail(self.stderr, min(output_limit, STDERR_LIMIT))),
            "stdout_url": self.stdout_url,
            "stderr_url": self.stderr_url,
            "ok": self.ok,
            "error": self.error,
        }


def _tail(text: str, limit: int) -> str:
    return text if len(text) <= limit else "...(cut)\n" + text[-limit:]


def poll_backoff() -> Backoff:
    """Polling delays for command waits: 1 s to 10 s, jittered."""
    return Backoff(base=1.5, factor=1.5, cap=10.0, floor=1.0)


class SendOptions(TypedDict, total=False):
    """What ``send_script`` (and ``run_script``) may be told besides where and what."""

    comment: str
    """Shown in the SSM console (cut to 100 characters); "algostack" if not given."""
    execution_timeout_s: int | None
    """At most the time left before the deadline, which is also the default."""
    output_bucket: str | None
    """Where SSM copies the full output (the API returns only the first 24,000 bytes)."""
    output_prefix: str | None


def send_script(
    ssm: Any,
    instance_ids: Sequence[str],
    script: str,
    *,
    deadline: Deadline,
    runtime: Runtime,
    backoff: Backoff | None = None,
    **options: Unpack[SendOptions],
) -> dict[str, Invocation]:
    """Send ``script`` as AWS-RunShellScript to every instance, 50 per SendCommand.

    The execution timeout defaults to the time left before the deadline, so a command never
    outlives the controller watching it. Returns one ``Invocation`` per instance; an instance
    whose command could not be sent carries ``error``.
    """
    commands = script_commands(script)
    comment = options.get("comment") or "algostack"
    execution_timeout_s = options.get("execution_timeout_s")
    output_bucket, output_prefix = options.get("output_bucket"), options.get("output_prefix")
    out: dict[str, Invocation] = {iid: Invocation(iid) for iid in instance_ids}
    for batch in chunks(list(instance_ids), SEND_BATCH):
        remaining = int(deadline.remaining())
        exec_timeout = max(1, min(execution_timeout_s or remaining, remaining, 172_800))
        kwargs: dict[str, Any] = {
            "InstanceIds": batch,
            "DocumentName": DOCUMENT,
            "Comment": comment[:100],
            "Parameters": {"commands": commands, "executionTimeout": [str(exec_timeout)]},
            "TimeoutSeconds": max(MIN_DELIVERY_TIMEOUT_S, min(600, remaining)),
        }
        if output_bucket:
            kwargs["OutputS3BucketName"] = output_bucket
            if output_prefix:
                kwargs["OutputS3KeyPrefix"] = output_prefix
        try:
            command_id = _send(ssm, kwargs, deadline, runtime, backoff or poll_backoff())
        except (ClientError, RetryableError) as exc:
            for iid in batch:
                out[iid].status = "NotSent"
                out[iid].error = f"SendCommand failed: {error_message(exc)}"
            continue
        for iid in batch:
            out[iid].command_id = command_id
    return out


def _send(
    ssm: Any, kwargs: dict[str, Any], deadline: Deadline, runtime: Runtime, backoff: Backoff
) -> str:
    def send() -> str:
        with retryable_codes(RETRY_SEND_CODES):
            return str(ssm.send_command(**kwargs)["Command"]["CommandId"])

    def note(attempt: int, exc: BaseException, delay: float) -> None:
        log.info("SendCommand: %s; retrying in %.1f s", exc, delay)

    return retry(send, deadline=deadline, runtime=runtime, backoff=backoff, on_retry=note)


@dataclass
class _Pending:
    command_id: str
    instances: set[str] = field(default_factory=set)


def wait_commands(
    ssm: Any,
    invocations: dict[str, Invocation],
    *,
    deadline: Deadline,
    runtime: Runtime,
    backoff: Backoff | None = None,
) -> dict[str, Invocation]:
    """Wait until every sent invocation is finished or the deadline comes; fill in status,
    exit code, stdout and stderr. Invocations still running at the deadline get ``error``."""
    pending: dict[str, _Pending] = {}
    for inv in invocations.values():
        if inv.command_id and inv.error is None:
            pending.setdefault(inv.command_id, _Pending(inv.command_id)).instances.add(
                inv.instance_id
            )
    finished: list[Invocation] = []
    listing = True

    def poll() -> None:
        nonlocal listing
        for cid in list(pending):
            if listing:
                try:
                    statuses = _list_statuses(ssm, cid)
                except (ClientError, NotImplementedError) as exc:
                    if not unsupported(exc):
                        raise
                    log.warning("ListCommandInvocations unavailable (%s); polling each", exc)
                    listing = False
            if not listing:
                statuses = _get_statuses(ssm, cid, pending[cid].instances)
            for iid in list(pending[cid].instances):
                # Missing right after SendCommand is normal: the invocation is not listed yet.
                status, details = statuses.get(iid, ("Pending", ""))
                inv = invocations[iid]
                inv.status, inv.status_details = status, details
                if status in TERMINAL:
                    pending[cid].instances.discard(iid)
                    finished.append(inv)
            if not pending[cid].instances:
                del pending[cid]
        if pending:
            raise PendingError(f"{len(pending)} command(s) still running")

    try:
        retry(poll, deadline=deadline, runtime=runtime, backoff=backoff or poll_backoff())
    except PendingError:
        for p in pending.values():
            for iid in p.instances:
                inv = invocations[iid]
                inv.error = (
                    f"command {p.command_id} still {inv.status} at the controller's "
                    "deadline (it keeps running on the instance until its execution timeout)"
                )
    _fetch_outputs(ssm, finished, deadline, runtime)
    return invocations


def _list_statuses(ssm: Any, command_id: str) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    kwargs: dict[str, Any] = {"CommandId": command_id, "MaxResults": 50}
    while True:
        page = ssm.list_command_invocations(**kwargs)
        for item in page.get("CommandInvocations", []):
            out[item["InstanceId"]] = (
                str(item.get("Status", "Pending")),
                str(item.get("StatusDetails", "")),
            )
        token = page.get("NextToken")
        if not token:
            return out
        kwargs["NextToken"] = token


def _get_statuses(ssm: Any, command_id: str, ids: set[str]) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for iid in sorted(ids):
        try:
            resp = ssm.get_command_invocation(CommandId=command_id, InstanceId=iid)
        except ClientError as exc:
            if error_code(exc) == "InvocationDoesNotExist":
                continue
            raise
        out[iid] = (str(resp.get("Status", "Pending")), str(resp.get("StatusDetails", "")))
    return out


def _fetch_outputs(
    ssm: Any, finished: list[Invocation], deadline: Deadline, runtime: Runtime
) -> None:
    if not finished:
        return
    workers = min(FETCH_WORKERS, len(finished))
    if workers == 1:
        _fetch_one(ssm, finished[0], deadline, runtime)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ssm-output") as pool:
        list(pool.map(lambda inv: _fetch_one(ssm, inv, deadline, runtime), finished))


def _fetch_one(ssm: Any, inv: Invocation, deadline: Deadline, runtime: Runtime) -> None:
    def get() -> Any:
        with retryable_codes(RETRY_GET_CODES):
            return ssm.get_command_invocation(CommandId=inv.command_id, InstanceId=inv.instance_id)

    backoff = Backoff(base=0.5, factor=2.0, cap=5.0, floor=0.2)
    try:
        resp = retry(get, deadline=deadline, runtime=runtime, backoff=backoff)
    except (ClientError, RetryableError) as exc:
        inv.error = f"GetCommandInvocation failed: {error_message(exc)}"
        return
    inv.status = str(resp.get("Status", inv.status))
    inv.status_details = str(resp.get("StatusDetails", inv.status_details))
    code = resp.get("ResponseCode")
    inv.exit_code = int(code) if code is not None else None
    inv.stdout = str(resp.get("StandardOutputContent", ""))[:STDOUT_LIMIT]
    inv.stderr = str(resp.get("StandardErrorContent", ""))[:STDERR_LIMIT]
    inv.stdout_url = resp.get("StandardOutputUrl") or None
    inv.stderr_url = resp.get("StandardErrorUrl") or None


def run_script(
    ssm: Any,
    instance_ids: Sequence[str],
    script: str,
    *,
    deadline: Deadline,
    runtime: Runtime,
    backoff: Backoff | None = None,
    **options: Unpack[SendOptions],
) -> dict[str, Invocation]:
    """``send_script`` then ``wait_commands``: run ``script`` everywhere and collect results."""
    sent = send_script(
        ssm, instance_ids, script, deadline=deadline, runtime=runtime, backoff=backoff, **options
    )
    return wait_commands(ssm, sent, deadline=deadline, runtime=runtime, backoff=backoff)
