"""The three controllers (DESIGN.md 3.6): ingest, trading, shutdown; plus fleet status.

Each takes injected clients, the parsed config and request, a deadline and a runtime, and
returns a JSON-serialisable dict; failures raise. Stdlib + boto3 only.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from typing import Any

from botocore.exceptions import ClientError

from algostack.control import ec2 as ec2h
from algostack.control import ssm as ssmh
from algostack.control.config import ControlConfig
from algostack.control.failures import ControlError, FleetError, InstanceNotFoundError
from algostack.control.requests import Request
from algostack.control.run_records import FAILED, SUCCEEDED, Claim, RunState
from algostack.control.runtime import Clients, Deadline, Runtime
from algostack.core.sessions import is_session

log = logging.getLogger("algostack.control")

INGEST = "ingest"
TRADING = "trading"
SHUTDOWN = "shutdown"
# Time kept back from the health wait for run.sh (clone, install, start units) to finish.
COMMAND_RESERVE_S = 240.0
# Time kept back from the sync for StopInstances.
STOP_RESERVE_S = 45.0
# A trading result stays well under Lambda's 256 KB async/destination payload limit.
RESULT_OUTPUT_BUDGET = 150_000
# How much of a failed command's stderr goes into the error: run.sh's failing step and a unit's last
# journal lines (20 lines of journalctl fit).
ERROR_TAIL = 2_000


def _base(component: str, cfg: ControlConfig, req: Request) -> dict[str, Any]:
    return {
        "component": component,
        "environment": cfg.environment,
        "trading_day": req.day.isoformat(),
        "request_id": req.request_id,
        "source": req.source,
        "dry_run": req.dry_run,
    }


def _closed_reason(req: Request) -> str | None:
    if req.ignore_calendar or is_session(req.day):
        return None
    kind = "a weekend" if req.day.weekday() >= 5 else "an NYSE holiday"
    return f"{req.day.isoformat()} is not an NYSE session ({kind}): nothing to run"


def _reserve(deadline: Deadline, seconds: float) -> Deadline:
    # Never keep back more than 40% of what is left: short budgets still get a health wait.
    return deadline.reserve(min(seconds, 0.4 * deadline.remaining()))


def _claim(state: RunState, req: Request, component: str, runtime: Runtime) -> Claim:
    if req.dry_run:
        return state.check(req.day, component, req.request_id, runtime.wall())
    return state.claim(req.day, component, req.request_id, runtime.wall(), force=req.force)


def _finish(
    state: RunState, req: Request, component: str, runtime: Runtime, status: str, detail: str
) -> None:
    try:
        state.finish(req.day, component, req.request_id, runtime.wall(), status, detail)
    except ClientError as exc:  # the run's outcome matters more than its record
        log.error("could not record %s run as %s: %s", component, status, exc)


def _save_report(clients: Clients, cfg: ControlConfig, result: dict[str, Any]) -> None:
    """Write the result to the SSM output bucket (best effort) for later inspection."""
    if not cfg.ssm_output_bucket or clients.s3 is None or result.get("dry_run"):
        return
    key = (
        f"{cfg.ssm_output_prefix}reports/{result['trading_day']}/"
        f"{result['component']}-{result['request_id']}.json"
    )
    try:
        clients.s3.put_object(
            Bucket=cfg.ssm_output_bucket,
            Key=key,
            Body=json.dumps(result, sort_keys=True, default=str).encode(),
            ContentType="application/json",
        )
        result["report_key"] = f"s3://{cfg.ssm_output_bucket}/{key}"
    except ClientError as exc:
        log.error("could not save the report to s3://%s/%s: %s", cfg.ssm_output_bucket, key, exc)


def run_ingest(
    clients: Clients, cfg: ControlConfig, req: Request, deadline: Deadline, runtime: Runtime
) -> dict[str, Any]:
    """Start the ingest host, wait for health and the SSM agent, run run.sh, return its output.

    Skips non-session days and runs already done or running for this day; raises on failure.
    """
    result = _base(INGEST, cfg, req)
    closed = _closed_reason(req)
    if closed:
        return {**result, "status": "skipped", "reason": closed}
    script = cfg.read_run_script()
    inst = ec2h.find_one(clients.ec2, cfg.ingest_instance_name, cfg.environment)
    result["instance"] = inst.summary()
    state = RunState(clients.ssm, cfg.state_prefix)
    claim = _claim(state, req, INGEST, runtime)
    result["idempotency"] = claim.summary()
    if req.dry_run:
        return {
            **result,
            "status": "dry_run",
            "would": {
                "start": [inst.id] if inst.state in ("stopped", "stopping") else [],
                "wait_healthy": [inst.id],
                "run_script": {
                    "instances": [inst.id],
                    "script": str(cfg.run_script),
                    "lines": len(ssmh.script_commands(script)),
                },
                "run": claim.acquired,
            },
        }
    if not claim.acquired:
        return {**result, "status": "duplicate", "reason": claim.reason}
    try:
        health = ec2h.ensure_healthy(
            clients.ec2, clients.ssm, [inst], _reserve(deadline, COMMAND_RESERVE_S), runtime
        )[inst.id]
        result["health"] = health.summary()
        if not health.ok:
            raise ControlError(
                f"ingest instance {inst.name} ({inst.id}) is not healthy: {health.error}", result
            )
        inv = ssmh.run_script(
            clients.ssm,
            [inst.id],
            script,
            deadline=deadline,
            runtime=runtime,
            comment=f"algostack ingest {cfg.environment} {req.day.isoformat()}",
            output_bucket=cfg.ssm_output_bucket,
            output_prefix=f"{cfg.ssm_output_prefix}{INGEST}/{req.day.isoformat()}",
        )[inst.id]
        result["command"] = inv.summary()
        if not inv.ok:
            raise ControlError(
                f"run.sh failed on ingest instance {inst.name} ({inst.id}): status {inv.status}"
                f" {inv.status_details}, exit code {inv.exit_code}"
                + (f", {inv.error}" if inv.error else "")
                + (f"; stderr: {_stderr_tail(inv)}" if inv.stderr else ""),
                result,
            )
        fresh = ec2h.describe_ids(clients.ec2, [inst.id]).get(inst.id, inst)
        result["instance"] = fresh.summary()
    except Exception as exc:
        _finish(state, req, INGEST, runtime, FAILED, str(exc))
        _save_report(clients, cfg, {**result, "status": "failed", "error": str(exc)})
        raise
    _finish(state, req, INGEST, runtime, SUCCEEDED, f"run.sh exit code {inv.exit_code}")
    result["status"] = "ok"
    _save_report(clients, cfg, result)
    return result


def _stderr_tail(inv: ssmh.Invocation) -> str:
    """The end of a command's stderr, redacted: run.sh's failing step and the unit's log."""
    return ssmh.redact(inv.stderr[-ERROR_TAIL:]).strip()


def _script_failure(inv: ssmh.Invocation, what: str = "run.sh") -> str:
    """``<what> <status> (exit code N): <stderr tail>`` for a command that ran and failed."""
    tail = _stderr_tail(inv)
    return f"{what} {inv.status} (exit code {inv.exit_code})" + (f": {tail}" if tail else "")


def nats_address(inst: ec2h.Instance, kind: str) -> str:
    """The ingest host's private (default) or public address, validated as an IP."""
    addr = inst.public_ip if kind == "public" else inst.private_ip
    if not addr:
        raise ControlError(
            f"ingest instance {inst.name} ({inst.id}, {inst.state}) has no {kind} IP address"
            + (
                ": give it a public IP or set ALGOSTACK_NATS_ADDRESS=private"
                if kind == "public"
                else ""
            )
        )
    return str(ipaddress.ip_address(addr))  # never inject anything but an address


def trading_script(script: str, address: str) -> str:
    """Prepend the export run.sh expects (name kept from the spec; DESIGN.md 3.2)."""
    return f"export NATS_PUBLIC_IP={ipaddress.ip_address(address)}\n{script}"


def _upstream_skip(req: Request) -> tuple[Request, str | None]:
    up = req.upstream
    if up is None or "status" not in up:
        return req, None
    status = up["status"]
    if status == "dry_run" and not req.dry_run:
        return req.with_dry_run(), None
    if status in ("skipped", "duplicate"):
        return req, f"the ingest run was {status} ({up.get('reason', 'no reason given')})"
    return req, None


def run_trading(
    clients: Clients, cfg: ControlConfig, req: Request, deadline: Deadline, runtime: Runtime
) -> dict[str, Any]:
    """Ensure the ingest host runs, start every stopped trader in one go, wait for all of them
    together, send run.sh (with the NATS address exported) in one SendCommand per 50, and
    report per instance. Raises ``FleetError`` when any instance failed, after running the
    healthy ones."""
    req, skip = _upstream_skip(req)
    result = _base(TRADING, cfg, req)
    skip = skip or _closed_reason(req)
    if skip:
        return {**result, "status": "skipped", "reason": skip}
    script = cfg.read_run_script()
    ingest = ec2h.find_one(clients.ec2, cfg.ingest_instance_name, cfg.environment)
    traders = ec2h.find_instances(clients.ec2, cfg.trader_name_pattern, cfg.environment)
    if not traders:
        raise InstanceNotFoundError(
            f"no trading instances match Name={cfg.trader_name_pattern!r}, "
            f"Environment={cfg.environment!r}: are there models in the bucket, and has "
            "Terraform created their instances?"
        )
    state = RunState(clients.ssm, cfg.state_prefix)
    claim = _claim(state, req, TRADING, runtime)
    result["idempotency"] = claim.summary()
    result["ingest"] = ingest.summary()
    if req.dry_run:
        return {
            **result,
            "status": "dry_run",
            "would": {
                "start": [i.id for i in [ingest, *traders] if i.state in ("stopped", "stopping")],
                "wait_healthy": [i.id for i in [ingest, *traders]],
                "run_script": {
                    "instances": [t.id for t in traders],
                    "script": str(cfg.run_script),
                    "nats_address": cfg.nats_address,
                },
                "run": claim.acquired,
            },
            "instances": {t.id: t.summary() for t in traders},
        }
    if not claim.acquired:
        return {**result, "status": "duplicate", "reason": claim.reason}
    try:
        _trade(clients, cfg, req, deadline, runtime, ingest, traders, script, result)
    except Exception as exc:
        _finish(state, req, TRADING, runtime, FAILED, str(exc))
        _save_report(clients, cfg, {**result, "status": "failed", "error": str(exc)})
        raise
    _finish(state, req, TRADING, runtime, SUCCEEDED, f"{len(traders)} instances ran run.sh")
    _save_report(clients, cfg, result)
    return result


def _trade(
    clients: Clients,
    cfg: ControlConfig,
    req: Request,
    deadline: Deadline,
    runtime: Runtime,
    ingest: ec2h.Instance,
    traders: list[ec2h.Instance],
    script: str,
    result: dict[str, Any],
) -> None:
    # One wait for the ingest host and the whole fleet: they boot concurrently.
    health = ec2h.ensure_healthy(
        clients.ec2,
        clients.ssm,
        [ingest, *traders],
        _reserve(deadline, COMMAND_RESERVE_S),
        runtime,
    )
    result["ingest"]["health"] = health[ingest.id].summary()
    if not health[ingest.id].ok:
        raise ControlError(
            f"ingest instance {ingest.name} ({ingest.id}) is not healthy, so no trader can "
            f"reach NATS: {health[ingest.id].error}",
            result,
        )
    fresh = ec2h.describe_ids(clients.ec2, [ingest.id, *(t.id for t in traders)])
    ingest = fresh.get(ingest.id, ingest)
    address = nats_address(ingest, cfg.nats_address)
    result["ingest"] = {**ingest.summary(), "health": health[ingest.id].summary()}
    result["nats_address"] = address
    ready = [t.id for t in traders if health[t.id].ok]
    invs = (
        ssmh.run_script(
            clients.ssm,
            ready,
            trading_script(script, address),
            deadline=deadline,
            runtime=runtime,
            comment=f"algostack trading {cfg.environment} {req.day.isoformat()}",
            output_bucket=cfg.ssm_output_bucket,
            output_prefix=f"{cfg.ssm_output_prefix}{TRADING}/{req.day.isoformat()}",
        )
        if ready
        else {}
    )
    limit = max(1_000, min(ssmh.STDOUT_LIMIT, RESULT_OUTPUT_BUDGET // max(1, len(traders))))
    report: dict[str, Any] = {}
    for t in traders:
        inst = fresh.get(t.id, t)
        item: dict[str, Any] = {**inst.summary(), "health": health[t.id].summary()}
        inv = invs.get(t.id)
        if inv is not None:
            item["command"] = inv.summary(limit)
        prefix = inst.tags.get("ModelPrefix")
        if cfg.bucket and prefix:
            item["outputs"] = f"s3://{cfg.bucket}/{prefix.rstrip('/')}/live/{req.day.isoformat()}/"
        item["ok"] = bool(health[t.id].ok and inv is not None and inv.ok)
        if not item["ok"]:
            item["status"] = inv.status if inv is not None else "unhealthy"
            item["exit_code"] = inv.exit_code if inv is not None else None
            item["error"] = (
                (inv.error if inv is not None else None)
                or health[t.id].error
                or (_script_failure(inv) if inv is not None else "not healthy")
            )
        report[t.id] = item
    failed = [iid for iid, item in report.items() if not item["ok"]]
    result["instances"] = report
    result["counts"] = {
        "total": len(traders),
        "ok": len(traders) - len(failed),
        "failed": len(failed),
    }
    result["status"] = "ok" if not failed else "failed"
    if failed:
        raise FleetError.from_report(
            f"{len(failed)} of {len(traders)} trading instances failed", result
        )


def run_shutdown(
    clients: Clients, cfg: ControlConfig, req: Request, deadline: Deadline, runtime: Runtime
) -> dict[str, Any]:
    """Run the final sync on every running trader, then stop every instance of the
    environment — also when a sync failed. Raises ``FleetError`` afterwards if anything failed.
    """
    result = _base(SHUTDOWN, cfg, req)
    instances = ec2h.find_instances(
        clients.ec2, [cfg.ingest_instance_name, cfg.trader_name_pattern], cfg.environment
    )
    traders = [i for i in instances if i.name != cfg.ingest_instance_name]
    syncing = [t for t in traders if t.state == "running"]
    stopping = [i for i in instances if i.state in ("pending", "running")]
    report: dict[str, dict[str, Any]] = {i.id: i.summary() for i in instances}
    if req.dry_run:
        return {
            **result,
            "status": "dry_run",
            "would": {
                "sync": [t.id for t in syncing],
                "stop": [i.id for i in stopping],
                "sync_command": cfg.sync_command,
            },
            "instances": report,
        }
    sync_errors: dict[str, str] = {}
    try:
        sync_errors = _sync(clients, cfg, req, syncing, report, deadline, runtime)
    except Exception as exc:  # stopping must happen whatever the sync did
        log.exception("final sync failed")
        sync_errors = {t.id: f"sync not run: {exc}" for t in syncing}
    for iid, err in sync_errors.items():
        report[iid]["sync"] = {**report[iid].get("sync", {}), "ok": False, "error": err}
    res = ec2h.stop_instances(clients.ec2, [i.id for i in stopping])
    stop_errors = {**res.errors, **res.capacity}
    if res.wrong_state:
        now = ec2h.describe_ids(clients.ec2, res.wrong_state)
        for iid in res.wrong_state:
            st = now[iid].state if iid in now else "gone"
            if st not in ("stopping", "stopped", "shutting-down", "terminated", "gone"):
                stop_errors[iid] = f"cannot stop an instance in state {st}"
    for iid in res.accepted:
        report[iid]["stop"] = {"ok": True}
    for iid, err in stop_errors.items():
        report[iid]["stop"] = {"ok": False, "error": err}
    for item in report.values():
        # A sync summary always carries an "error" key (None when it worked): test its value.
        item["ok"] = not item.get("sync", {}).get("error") and not item.get("stop", {}).get("error")
        if not item["ok"]:
            item["error"] = "; ".join(
                e
                for e in (item.get("sync", {}).get("error"), item.get("stop", {}).get("error"))
                if e
            )
    result.update(
        instances=report,
        synced=[t.id for t in syncing if t.id not in sync_errors],
        stopped=res.accepted,
        status="ok" if not (sync_errors or stop_errors) else "failed",
    )
    _save_report(clients, cfg, result)
    if sync_errors or stop_errors:
        raise FleetError.from_report(
            f"shutdown stopped {len(res.accepted)} of {len(stopping)} instances; "
            f"{len(sync_errors)} syncs and {len(stop_errors)} stops failed",
            result,
        )
    return result


def _sync(
    clients: Clients,
    cfg: ControlConfig,
    req: Request,
    syncing: list[ec2h.Instance],
    report: dict[str, dict[str, Any]],
    deadline: Deadline,
    runtime: Runtime,
) -> dict[str, str]:
    if not syncing:
        return {}
    errors: dict[str, str] = {}
    pings = ec2h.agent_status(clients.ssm, [t.id for t in syncing])
    online = [t.id for t in syncing if pings.get(t.id, "").startswith("Online")]
    for t in syncing:
        if t.id not in online:
            errors[t.id] = f"SSM agent not online ({pings.get(t.id, 'not registered')})"
    if not online:
        return errors
    invs = ssmh.run_script(
        clients.ssm,
        online,
        cfg.sync_command + "\n",
        deadline=_reserve(deadline, STOP_RESERVE_S),
        runtime=runtime,
        comment=f"algostack final sync {cfg.environment} {req.day.isoformat()}",
        output_bucket=cfg.ssm_output_bucket,
        output_prefix=f"{cfg.ssm_output_prefix}{SHUTDOWN}/{req.day.isoformat()}",
    )
    for iid, inv in invs.items():
        report[iid]["sync"] = inv.summary(2_000)
        if not inv.ok:
            errors[iid] = inv.error or _script_failure(inv, "sync")
    return errors
