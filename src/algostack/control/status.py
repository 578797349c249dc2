"""Fleet status: every instance of an environment with its state, health and last command.

Read-only (Describe*/List*/GetParameter). Stdlib + boto3 only.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from botocore.exceptions import ClientError

from algostack.control import ec2 as ec2h
from algostack.control.config import ControlConfig
from algostack.control.controllers import INGEST, TRADING
from algostack.control.run_records import RunState
from algostack.control.runtime import Clients


def last_command(ssm: Any, instance_id: str) -> dict[str, Any] | None:
    """The most recent SSM command invocation on an instance, or ``None``."""
    try:
        page = ssm.list_command_invocations(InstanceId=instance_id, MaxResults=1)
    except (ClientError, NotImplementedError) as exc:
        if ec2h.unsupported(exc):
            return None
        raise
    items = page.get("CommandInvocations", [])
    if not items:
        return None
    item = items[0]
    return {
        "command_id": item.get("CommandId"),
        "status": item.get("Status"),
        "requested": str(item.get("RequestedDateTime", "")),
        "comment": item.get("Comment", ""),
    }


def fleet_status(clients: Clients, cfg: ControlConfig, day: date) -> dict[str, Any]:
    """Describe every instance of the environment and today's run records."""
    instances = ec2h.find_instances(
        clients.ec2, [cfg.ingest_instance_name, cfg.trader_name_pattern], cfg.environment
    )
    ids = [i.id for i in instances]
    checks = ec2h.status_checks(clients.ec2, ids) if ids else {}
    running = [i.id for i in instances if i.state == "running"]
    pings = ec2h.agent_status(clients.ssm, running) if running else {}
    rows: list[dict[str, Any]] = []
    for inst in instances:
        _, system, status = checks.get(inst.id, (inst.state, "unknown", "unknown"))
        rows.append(
            {
                **inst.summary(),
                "role": "ingest" if inst.name == cfg.ingest_instance_name else "trader",
                "status_checks": f"{system}/{status}",
                "ssm_agent": pings.get(inst.id, "-" if inst.state != "running" else "offline"),
                "last_command": last_command(clients.ssm, inst.id),
            }
        )
    state = RunState(clients.ssm, cfg.state_prefix)
    runs = {}
    for component in (INGEST, TRADING):
        rec = state.read(day, component)
        runs[component] = rec.summary() if rec else None
    return {
        "environment": cfg.environment,
        "trading_day": day.isoformat(),
        "instances": rows,
        "runs": runs,
    }
