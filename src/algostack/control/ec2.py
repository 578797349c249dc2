"""EC2 helpers: find instances by Name tag, start and stop them in batches, wait for health.

Stdlib + boto3 only. Every wait polls the whole set at once (one DescribeInstanceStatus per
100 instances, one DescribeInstanceInformation per 50) and is bounded by a ``Deadline``.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from algostack.control.failures import InstanceNotFoundError, PendingError
from algostack.control.runtime import Deadline, Runtime, retry
from algostack.core.backoff import Backoff
from algostack.errors import RetryableError

log = logging.getLogger("algostack.control.ec2")

T = TypeVar("T")

START_BATCH = 50  # keeps one bad instance from failing a huge call; calls grow as N/50
STATUS_BATCH = 100  # DescribeInstanceStatus accepts at most 100 explicit instance ids
AGENT_BATCH = 50  # DescribeInstanceInformation: at most 50 ids per InstanceIds filter
DESCRIBE_BATCH = 200
LIVE_STATES = ("pending", "running", "stopping", "stopped")
# A started instance that reads 'stopped' this long after StartInstances, without ever being
# seen pending/running, is treated as having fallen back (EC2 reads are eventually consistent).
FALLBACK_GRACE_S = 45.0
# Status checks may read 'impaired' briefly during boot; fail only when it persists.
IMPAIRED_GRACE_S = 90.0
KMS_HINT = (
    "if its volumes are encrypted with a customer-managed KMS key, whoever starts it needs "
    "kms:CreateGrant on that key (condition kms:GrantIsForAWSResource=true)"
)


def chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    """Yield ``items`` in lists of at most ``size``."""
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


def error_code(exc: ClientError) -> str:
    """The AWS error code of a botocore ``ClientError``."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def error_message(exc: BaseException) -> str:
    """``Code: message`` of a botocore ``ClientError``; ``str(exc)`` of any other error."""
    if not isinstance(exc, ClientError):
        return str(exc)
    err = exc.response.get("Error", {})
    return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".strip()


@contextmanager
def retryable_codes(codes: Collection[str]) -> Iterator[None]:
    """Raise a ``ClientError`` whose code is in ``codes`` as ``RetryableError`` (same
    ``Code: message``), so the retrier retries it; any other error passes unchanged."""
    try:
        yield
    except ClientError as exc:
        if error_code(exc) in codes:
            raise RetryableError(error_message(exc)) from exc
        raise


@dataclass(frozen=True)
class Instance:
    """One EC2 instance as the controllers see it."""

    id: str
    name: str
    state: str
    private_ip: str | None = None
    public_ip: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    state_reason: str | None = None

    @classmethod
    def from_api(cls, item: dict[str, Any]) -> Instance:
        """Parse one ``Reservations[].Instances[]`` item of DescribeInstances."""
        tags = {t["Key"]: t["Value"] for t in item.get("Tags", []) if "Key" in t}
        reason = item.get("StateReason") or {}
        return cls(
            id=item["InstanceId"],
            name=tags.get("Name", ""),
            state=item.get("State", {}).get("Name", "unknown"),
            private_ip=item.get("PrivateIpAddress") or None,
            public_ip=item.get("PublicIpAddress") or None,
            tags=tags,
            state_reason=reason.get("Message") or reason.get("Code") or None,
        )

    def summary(self) -> dict[str, Any]:
        """A JSON-safe view for results (tags limited to the model's identity)."""
        keep = ("Role", "ModelPrefix", "ModelType", "Symbol", "ModelId", "ModelNumber")
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "private_ip": self.private_ip,
            "public_ip": self.public_ip,
            "tags": {k: self.tags[k] for k in keep if k in self.tags},
        }


def _describe(ec2: Any, **kwargs: Any) -> list[Instance]:
    out: list[Instance] = []
    for page in ec2.get_paginator("describe_instances").paginate(**kwargs):
        for res in page.get("Reservations", []):
            out.extend(Instance.from_api(i) for i in res.get("Instances", []))
    return out


def find_instances(
    ec2: Any, names: str | Iterable[str], environment: str | None = None
) -> list[Instance]:
    """Every live instance whose Name tag matches one of ``names`` (``*`` wildcards allowed).

    With ``environment``, only instances tagged ``Environment=<environment>`` (the tag the
    IAM policy scopes start/stop by). Sorted by name, then id.
    """
    values = [names] if isinstance(names, str) else list(names)
    filters = [
        {"Name": "tag:Name", "Values": values},
        {"Name": "instance-state-name", "Values": list(LIVE_STATES)},
    ]
    if environment:
        filters.append({"Name": "tag:Environment", "Values": [environment]})
    found = _describe(ec2, Filters=filters)
    return sorted(found, key=lambda i: (i.name, i.id))


def find_one(ec2: Any, name: str, environment: str | None = None) -> Instance:
    """The one live instance named ``name``; raise when there is none or several."""
    found = find_instances(ec2, name, environment)
    where = f"Name={name!r}" + (f", Environment={environment!r}" if environment else "")
    if not found:
        raise InstanceNotFoundError(
            f"no pending/running/stopped instance with {where}: has Terraform created it, "
            "and is it tagged as the spec says?"
        )
    if len(found) > 1:
        ids = ", ".join(f"{i.id} ({i.state})" for i in found)
        raise InstanceNotFoundError(
            f"{len(found)} instances match {where} ({ids}); exactly one is expected: "
            "terminate or rename the extra ones"
        )
    return found[0]


def describe_ids(ec2: Any, ids: Sequence[str]) -> dict[str, Instance]:
    """Describe instances by id (batched)."""
    out: dict[str, Instance] = {}
    for batch in chunks(list(ids), DESCRIBE_BATCH):
        for inst in _describe(ec2, InstanceIds=batch):
            out[inst.id] = inst
    return out


@dataclass
class BatchResult:
    """Outcome of a batched start or stop: ids accepted, ids refused with the reason."""

    accepted: list[str] = field(default_factory=list)
    wrong_state: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    capacity: dict[str, str] = field(default_factory=dict)


def _batched_call(ec2: Any, op: str, ids: Sequence[str]) -> BatchResult:
    result = BatchResult()
    for batch in chunks(list(ids), START_BATCH):
        try:
            getattr(ec2, op)(InstanceIds=batch)
            result.accepted.extend(batch)
            continue
        except ClientError as exc:
            if len(batch) == 1:
                _classify(result, batch[0], exc)
                continue
            log.warning(
                "%s of %d instances failed (%s); retrying one by one",
                op,
                len(batch),
                error_message(exc),
            )
        # One refused instance fails the whole call: isolate it.
        for iid in batch:
            try:
                getattr(ec2, op)(InstanceIds=[iid])
                result.accepted.append(iid)
            except ClientError as exc:
                _classify(result, iid, exc)
    return result


def _classify(result: BatchResult, iid: str, exc: ClientError) -> None:
    code = error_code(exc)
    if code == "IncorrectInstanceState":
        result.wrong_state.append(iid)
    elif code in ("InsufficientInstanceCapacity", "InstanceLimitExceeded"):
        result.capacity[iid] = (
            f"{error_message(exc)} (AWS has no capacity for this instance type now: retry "
            "later, or change the instance type or subnet/AZ)"
        )
    else:
        result.errors[iid] = error_message(exc)


def start_instances(ec2: Any, ids: Sequence[str]) -> BatchResult:
    """Start ``ids`` in calls of up to 50; a refused batch is retried one instance at a time."""
    return _batched_call(ec2, "start_instances", ids)


def stop_instances(ec2: Any, ids: Sequence[str]) -> BatchResult:
    """Stop ``ids`` in calls of up to 50; a refused batch is retried one instance at a time."""
    return _batched_call(ec2, "stop_instances", ids)


@dataclass
class Health:
    """The health of one instance as last seen by ``ensure_healthy``."""

    id: str
    name: str
    state: str = "unknown"
    system_status: str = "unknown"
    instance_status: str = "unknown"
    agent: str = "unknown"
    ok: bool = False
    error: str | None = None
    started: bool = False
    start_requested_at: float | None = None
    seen_up: bool = False
    impaired_since: float | None = None
    last_error: str | None = None
    """A retried problem (no capacity), reported if the deadline comes first."""

    @property
    def done(self) -> bool:
        """Healthy or failed: nothing more to wait for."""
        return self.ok or self.error is not None

    def summary(self) -> dict[str, Any]:
        """A JSON-safe view."""
        return {
            "name": self.name,
            "state": self.state,
            "status_checks": f"{self.system_status}/{self.instance_status}",
            "ssm_agent": self.agent,
            "started": self.started,
            "ok": self.ok,
            "error": self.error,
        }


def status_checks(ec2: Any, ids: Sequence[str]) -> dict[str, tuple[str, str, str]]:
    """``{id: (state, system status, instance status)}`` in one call per 100 instances."""
    out: dict[str, tuple[str, str, str]] = {}
    for batch in chunks(list(ids), STATUS_BATCH):
        kwargs: dict[str, Any] = {"InstanceIds": batch, "IncludeAllInstances": True}
        while True:
            page = ec2.describe_instance_status(**kwargs)
            for st in page.get("InstanceStatuses", []):
                out[st["InstanceId"]] = (
                    st.get("InstanceState", {}).get("Name", "unknown"),
                    st.get("SystemStatus", {}).get("Status", "unknown"),
                    st.get("InstanceStatus", {}).get("Status", "unknown"),
                )
            token = page.get("NextToken")
            if not token:
                break
            kwargs["NextToken"] = token
    return out


def unsupported(exc: Exception) -> bool:
    """True when an endpoint does not implement the call (moto_server answers 500/501).

    Only used to degrade gracefully: every fallback stays correct on real AWS.
    """
    if isinstance(exc, NotImplementedError):
        return True
    if not isinstance(exc, ClientError):
        return False
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status in (500, 501) or error_code(exc) in ("NotImplemented", "500", "501")


def agent_status(ssm: Any, ids: Sequence[str]) -> dict[str, str]:
    """``{id: PingStatus}`` of the SSM agent (Online, ConnectionLost, Inactive); absent = not
    registered yet. One call per 50 instances.

    Where DescribeInstanceInformation is not implemented (moto_server), every id reads
    ``Online (unverified)``: SendCommand then retries until the agent has registered.
    """
    try:
        return _agent_status(ssm, ids)
    except (ClientError, NotImplementedError) as exc:
        if not unsupported(exc):
            raise
        log.warning("DescribeInstanceInformation unavailable (%s); not checking the agent", exc)
        return {iid: "Online (unverified)" for iid in ids}


def _agent_status(ssm: Any, ids: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for batch in chunks(list(ids), AGENT_BATCH):
        kwargs: dict[str, Any] = {
            "Filters": [{"Key": "InstanceIds", "Values": batch}],
            "MaxResults": 50,
        }
        while True:
            page = ssm.describe_instance_information(**kwargs)
            for info in page.get("InstanceInformationList", []):
                out[info["InstanceId"]] = str(info.get("PingStatus", "unknown"))
            token = page.get("NextToken")
            if not token:
                break
            kwargs["NextToken"] = token
    return out


def health_backoff() -> Backoff:
    """Polling delays for health waits: 1 s to 15 s, jittered."""
    return Backoff(base=2.0, factor=1.5, cap=15.0, floor=1.0)


def ensure_healthy(
    ec2: Any,
    ssm: Any,
    instances: Sequence[Instance],
    deadline: Deadline,
    runtime: Runtime,
    *,
    backoff: Backoff | None = None,
    check_agent: bool = True,
) -> dict[str, Health]:
    """Start what is stopped and wait until every instance passes both status checks and its
    SSM agent is online, or fails, or the deadline comes.

    Returns one ``Health`` per instance; never raises for a single instance's failure (the
    caller decides). Instances that are stopping are started once they have stopped.
    """
    track = {i.id: Health(i.id, i.name, state=i.state) for i in instances}
    started_at = runtime.clock()
    _start(ec2, track, [i.id for i in instances if i.state == "stopped"], runtime)

    def poll() -> None:
        _poll(ec2, ssm, track, runtime, check_agent)
        waiting = sum(not h.done for h in track.values())
        if waiting:
            raise PendingError(f"{waiting} instance(s) not healthy yet")

    try:
        retry(poll, deadline=deadline, runtime=runtime, backoff=backoff or health_backoff())
    except PendingError:
        waited = runtime.clock() - started_at
        for h in track.values():
            if not h.done:
                h.error = (
                    f"not healthy after {waited:.0f} s, before the deadline (state {h.state}, "
                    f"status checks {h.system_status}/{h.instance_status}, SSM agent {h.agent})"
                    + (f"; last error: {h.last_error}" if h.last_error else "")
                )
    return track


def _start(ec2: Any, track: dict[str, Health], ids: list[str], runtime: Runtime) -> None:
    if not ids:
        return
    res = start_instances(ec2, ids)
    now = runtime.clock()
    for iid in res.accepted:
        track[iid].started = True
        track[iid].start_requested_at = now
    # Capacity errors are retried on the next polls; the message is kept for the timeout.
    for iid, msg in res.capacity.items():
        log.warning("start %s: %s", iid, msg)
        track[iid].last_error = msg
    for iid, msg in res.errors.items():
        track[iid].error = f"start failed: {msg}"
    # wrong_state: re-read on the next poll (it was stopping, or someone started it).


def _poll(ec2: Any, ssm: Any, track: dict[str, Health], runtime: Runtime, agent: bool) -> None:
    waiting = [h for h in track.values() if not h.done]
    if not waiting:
        return
    checks = status_checks(ec2, [h.id for h in waiting])
    now = runtime.clock()
    to_start: list[str] = []
    fell_back: list[Health] = []
    status_ok: list[Health] = []
    for h in waiting:
        state, system, inst = checks.get(h.id, (h.state, "unknown", "unknown"))
        h.state, h.system_status, h.instance_status = state, system, inst
        if state in ("shutting-down", "terminated"):
            h.error = f"instance is {state}"
        elif state == "stopped":
            if h.start_requested_at is None:
                to_start.append(h.id)
            elif h.seen_up or now - h.start_requested_at > FALLBACK_GRACE_S:
                fell_back.append(h)
        elif state == "stopping":
            if h.seen_up:
                fell_back.append(h)
        elif state in ("pending", "running"):
            h.seen_up = h.start_requested_at is not None or h.seen_up
            if state == "running":
                if system == "ok" and inst == "ok":
                    h.impaired_since = None
                    status_ok.append(h)
                elif "impaired" in (system, inst):
                    h.impaired_since = h.impaired_since or now
                    if now - h.impaired_since > IMPAIRED_GRACE_S:
                        h.error = (
                            f"status checks impaired (system {system}, instance {inst}) for "
                            f"over {IMPAIRED_GRACE_S:.0f} s: see the EC2 console's status checks"
                        )
    if fell_back:
        reasons = describe_ids(ec2, [h.id for h in fell_back])
        for h in fell_back:
            reason = reasons.get(h.id)
            why = reason.state_reason if reason and reason.state_reason else "no reason given"
            h.error = f"returned to {h.state} after start ({why}); {KMS_HINT}"
    _start(ec2, track, to_start, runtime)
    if not status_ok:
        return
    if not agent:
        for h in status_ok:
            h.ok = True
        return
    pings = agent_status(ssm, [h.id for h in status_ok])
    for h in status_ok:
        h.agent = pings.get(h.id, "not registered")
        h.ok = h.agent.startswith("Online")
