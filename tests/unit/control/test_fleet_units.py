"""``fleet status`` reads each host's algostack units: ``systemctl show`` parsed into a verdict
per unit, failing ones named (the real hosts answer in tests/aws_day)."""

from __future__ import annotations

from algostack.commands.fleet import _units_cell
from algostack.control.status import parse_units

SHOW = """\
Id=algostack-nats.service
ActiveState=active
SubState=running
Result=success
NRestarts=0
ExecMainStatus=0

Id=algostack-gateway.service
NRestarts=6
Result=start-limit-hit
ActiveState=failed
SubState=failed
ExecMainStatus=1

Id=algostack-ingest.service
ActiveState=failed
SubState=failed
Result=exit-code
NRestarts=0
ExecMainStatus=3

Id=algostack-trader.service
ActiveState=activating
SubState=auto-restart
Result=exit-code
NRestarts=2
ExecMainStatus=1

Id=algostack-dashboard.service
ActiveState=active
SubState=running
Result=success
NRestarts=1
ExecMainStatus=0
"""


def test_parse_units_names_each_way_a_unit_fails() -> None:
    rows = {r["unit"]: r for r in parse_units(SHOW)}
    verdicts = {u: (r["failing"], r["verdict"]) for u, r in rows.items()}
    assert verdicts == {
        "algostack-nats.service": (False, "active"),
        "algostack-gateway.service": (True, "failed: start-limit-hit, exit 1"),
        "algostack-ingest.service": (True, "failed: exit-code, exit 3"),
        "algostack-trader.service": (True, "restarting (2 restarts)"),
        "algostack-dashboard.service": (True, "active, restarted 1x"),
    }
    assert rows["algostack-gateway.service"]["restarts"] == 6


def test_units_cell_says_ok_failing_or_why_unread() -> None:
    healthy = parse_units(SHOW.split("\n\n")[0])
    assert _units_cell({"units": healthy, "failing_units": []}) == "units ok (1)"
    assert _units_cell({"units": [], "failing_units": []}) == "no algostack units"
    units = parse_units(SHOW)
    failing = [f"{u['unit']} {u['verdict']}" for u in units if u["failing"]]
    cell = _units_cell({"units": units, "failing_units": failing})
    assert cell.startswith("FAILING algostack-gateway.service failed: start-limit-hit")
    assert "algostack-nats" not in cell
    assert _units_cell({"units_error": "units not read: TimedOut"}) == "units not read: TimedOut"
    assert parse_units("") == []
