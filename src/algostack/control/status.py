"""Fleet status: every instance of an environment with its state, health and last command,
and the algostack units on each running host.

Read-only: Describe*/List*/GetParameter, plus (``units=True``) one SSM RunShellScript per
running host that only reads systemd's state (``systemctl show``). Stdlib + boto3 only.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from botocore.exceptions import ClientError

from algostack.control import ec2 as ec2h
from algostack.control import ssm as ssmh
from algostack.control.config import ControlConfig
from algostack.control.controllers import INGEST, TRADING
from algostack.control.run_records import RunState
from algostack.control.runtime import Clients, Deadline, Runtime
from algostack.core.unit_state import SHOW_PROPERTIES, UnitState

UNIT_PROPERTIES = ("Id", *SHOW_PROPERTIES, "ExecMainStatus")
UNITS_SCRIPT = (
    "systemctl show --no-pager "
    + " ".join(f"-p {p}" for p in UNIT_PROPERTIES)
    + " 'algostack-*.service'"
)
"""Reads every algostack service's state on a host; changes nothing."""
UNITS_TIMEOUT_S = 60.0


def parse_units(text: str) -> list[dict[str, Any]]:
    """``systemctl show`` output (``UnitState.parse_many``) as one row per unit, with
    ``failing`` set for a unit that failed, is waiting to restart, or restarted since boot, and
    ``verdict`` saying which (e.g. ``failed: exit-code, exit 3``, ``restarting (4 restarts)``)."""
    rows: list[dict[str, Any]] = []
    for st in UnitState.parse_many(text):
        if st.active == "failed":
            code = st.exit_status if st.exit_status not in ("", "0") else ""
            verdict = f"failed: {st.result}" + (f", exit {code}" if code else "")
        elif st.sub == "auto-restart":
            verdict = f"restarting ({st.restarts} restarts)"
        elif st.restarts:
            verdict = f"{st.active}, restarted {st.restarts}x"
        else:
            verdict = st.active
        failing = st.active == "failed" or st.sub == "auto-restart" or st.restarts > 0
        rows.append(
            {
                "unit": st.unit,
                "active": st.active,
                "sub": st.sub,
                "result": st.result,
                "restarts": st.restarts,
                "exit_status": st.exit_status,
                "failing": failing,
                "verdict": verdict,
            }
        )
    return rows


def unit_health(
    ssm: Any, instance_ids: list[str], *, runtime: Runtime, timeout_s: float = UNITS_TIMEOUT_S
) -> dict[str, dict[str, Any]]:
    """``{instance id: {"units": [...]} | {"error": "..."}}``: each host's algostack units
    (``parse_units``), read with one SSM command; a host that did not answer says why."""
    deadline = Deadline.after(timeout_s, runtime.clock)
    invs = ssmh.run_script(
        ssm,
        instance_ids,
        UNITS_SCRIPT,
        deadline=deadline,
        runtime=runtime,
        comment="algostack fleet status: read units",
        execution_timeout_s=30,
    )
    out: dict[str, dict[str, Any]] = {}
    for iid in instance_ids:
        inv = invs[iid]
        if inv.ok:
            out[iid] = {"units": parse_units(inv.stdout)}
        else:
            why = inv.error or f"{inv.status} {inv.status_details}".strip()
            out[iid] = {"error": f"units not read: {why}"}
    return out


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


def fleet_status(
    clients: Clients,
    cfg: ControlConfig,
    day: date,
    *,
    units: bool = True,
    runtime: Runtime | None = None,
) -> dict[str, Any]:
    """Describe every instance of the environment and today's run records; with ``units``,
    each running host's algostack units (``unit_health``: ``units`` and ``failing_units``, or
    ``units_error``, per row; ``failing_units`` naming every host's failing unit at the top)."""
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
    reachable = [r["id"] for r in rows if str(r["ssm_agent"]).startswith("Online")]
    health = unit_health(clients.ssm, reachable, runtime=runtime or Runtime()) if units else {}
    failing: list[str] = []
    for row in rows:
        got = health.get(row["id"])
        if got is None:
            continue
        if "error" in got:
            row["units_error"] = got["error"]
            continue
        row["units"] = got["units"]
        row["failing_units"] = [f"{u['unit']} {u['verdict']}" for u in got["units"] if u["failing"]]
        failing += [f"{row['name']}: {what}" for what in row["failing_units"]]
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
        "failing_units": failing,
    }
