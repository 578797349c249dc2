"""An AWS trading day on this machine, as it runs on AWS: Terraform as committed, real
systemd hosts bootstrapped by run.sh through SSM, the paper broker reached only by the
execution gateway on the ingest host (trading hosts hold no Alpaca key), the models' books
summing to the account, the final sync and the stop; then a second day on the same hosts,
then the fault drills: each breaks one thing outside the project, the controller must fail
with a message naming the host and the cause (nothing downstream runs), and a re-invocation
after the fix must converge; a trader hung on its host is restarted by systemd. One module,
in this order, on one desk (the fixture is module-scoped: the emulator patches moto's
classes while it runs, and other tests use moto in-process)."""

from __future__ import annotations

import calendar
import csv
import io
import json
import re
import time
from datetime import date
from typing import Any

import pytest

from algostack.core.orders import Side, client_order_id
from algostack.services.node.units import ABORT_TIMEOUT_S, RESTART_SEC, WATCHDOG_S
from algostack.testing.aws.day import PAPER_KEY, PAPER_SECRET, AwsDay, Invoked
from algostack.testing.aws.gitserver import keypair

pytestmark = [pytest.mark.aws_day, pytest.mark.timeout(1800)]

DAY_ONE = date(2026, 11, 30)
DAY_TWO = date(2026, 12, 1)
INGEST = "alpaca-websocket-ingest-qa"


def _run_day(desk: AwsDay, day: date) -> dict[str, Any]:
    report = desk.start_day(day)
    for inv in report.invocations:
        assert inv.ok, f"{inv.name}: {inv.error}"
    assert len(report.invocations) == 2
    # What systemd gave each running service (the process's own environment).
    environments = {
        desk.spec(p).instance_name(desk.env): desk.unit_environment(
            desk.spec(p).instance_name(desk.env), "algostack-trader.service"
        )
        for p in desk.model_prefixes
    }
    environments[INGEST] = desk.unit_environment(INGEST, "algostack-gateway.service")
    orders_before = len(desk.broker.orders()) if desk.broker else 0
    sent = desk.stream_session(day)
    settled_s = desk.wait_books_settled(day, orders_before)
    timer_s = desk.wait_timer_sync(day)
    shutdown = desk.end_day(day)
    assert shutdown.ok, shutdown.error
    assert desk.broker is not None
    return {
        "report": report,
        "sent": sent,
        "orders": desk.broker.orders()[orders_before:],
        "positions": desk.account_positions(),
        "environments": environments,
        "shutdown": shutdown,
        "timer_s": timer_s,
        "settled_s": settled_s,
    }


def _journal_rows(desk: AwsDay, prefix: str, day: date) -> list[dict[str, str]]:
    text = desk.journal(prefix, f"trades_{day.isoformat()}.csv").read_text()
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture(scope="module")
def day_one(desk: AwsDay) -> dict[str, Any]:
    return _run_day(desk, DAY_ONE)


def test_day_one_orders_reach_alpaca_only_from_the_gateway(
    desk: AwsDay, day_one: dict[str, Any]
) -> None:
    assert day_one["sent"] > 0
    orders = day_one["orders"]
    assert orders, "no order reached the fake Alpaca"
    ids = [o["client_order_id"] for o in orders]
    assert len(ids) == len(set(ids)), "an order was sent twice"
    assert all(cid.startswith("gw-") for cid in ids), [c for c in ids if not c.startswith("gw-")]
    for prefix in desk.model_prefixes:
        rows = _journal_rows(desk, prefix, DAY_ONE)
        assert rows, f"{prefix} made no trade on {DAY_ONE}"
        for row in rows:
            # The model's id is the one core.orders derives from (model, symbol, bar, side).
            cid = row["client_order_id"]
            stamp = cid.rsplit("-", 2)[-2]
            bar_ts = calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M")) * 1_000_000_000
            key = desk.spec(prefix).key
            assert client_order_id(key, row["symbol"], bar_ts, Side(row["side"])) == cid


def test_day_one_no_trading_host_holds_alpaca_keys(desk: AwsDay, day_one: dict[str, Any]) -> None:
    envs = day_one["environments"]
    assert envs[INGEST]["APCA_API_KEY_ID"] == PAPER_KEY  # the gateway holds them
    for prefix in desk.model_prefixes:
        host = desk.spec(prefix).instance_name(desk.env)
        env = envs[host]
        assert env["ALGOSTACK_NATS_USER"] == "trader"
        assert not [k for k in env if k.startswith("APCA_")], sorted(env)
        assert PAPER_KEY not in env.values() and PAPER_SECRET not in env.values()
        env_file = desk.host_file(host, "/opt/algostack/secrets/trader.env").read_text()
        assert "APCA" not in env_file and PAPER_KEY not in env_file
        assert PAPER_SECRET not in env_file
        unit = desk.host_file(host, "/etc/systemd/system/algostack-trader.service").read_text()
        assert "--broker gateway" in unit


def test_day_one_each_command_ran_only_on_the_hosts_it_named(
    desk: AwsDay, day_one: dict[str, Any]
) -> None:
    assert desk.cloud is not None
    roles = {"algostack ingest": "alpaca-websocket-ingest-", "algostack trading": "trading-server-"}
    checked = 0
    for inv in desk.cloud.invocations.values():
        name = desk.cloud.machines[inv.instance_id].name
        for comment, host in roles.items():
            if inv.comment.startswith(comment):
                assert name.startswith(host), f"{inv.comment!r} ran on {name}"
                assert inv.status == "Success", f"{name}: {inv.stderr[-2000:]}"
                checked += 1
    assert checked == 1 + len(desk.model_prefixes)


def test_day_one_journals_synced_equal_the_hosts_and_the_account(
    desk: AwsDay, day_one: dict[str, Any]
) -> None:
    for prefix in desk.model_prefixes:
        live = desk.bucket_objects(f"{prefix}/live/{DAY_ONE.isoformat()}/")
        trades_key = f"{prefix}/live/{DAY_ONE.isoformat()}/trades_{DAY_ONE.isoformat()}.csv"
        log_key = f"{prefix}/live/{DAY_ONE.isoformat()}/live_trader.log"
        assert trades_key in live and log_key in live, sorted(live)
        on_host = desk.journal(prefix, f"trades_{DAY_ONE.isoformat()}.csv").read_bytes()
        assert live[trades_key] == on_host
    # What the models journaled is what the account executed, share for share (one model per
    # symbol in this desk: nothing crosses), and the models' books sum to the account.
    journaled = desk.journal_shares((DAY_ONE,))
    assert journaled and journaled == desk.broker_shares(day_one["orders"])
    assert desk.net(journaled) == day_one["positions"]


def test_day_one_every_instance_stopped_after_the_final_sync(
    desk: AwsDay, day_one: dict[str, Any]
) -> None:
    assert desk.cloud is not None
    states = {m.name: m.moto._state.name for m in desk.cloud.machines.values()}
    assert set(states.values()) == {"stopped"}, states
    result = day_one["shutdown"].result
    assert result is not None
    traders = {m.instance_id for m in desk.cloud.machines.values() if m.name.startswith("trading")}
    assert set(result["synced"]) == traders
    assert all(result["instances"][t]["sync"]["ok"] for t in traders)
    # Each trader's final sync ended before its host was asked to stop.
    syncs = {
        inv.instance_id: inv
        for inv in desk.cloud.invocations.values()
        if inv.comment.startswith("algostack final sync") and DAY_ONE.isoformat() in inv.comment
    }
    assert set(syncs) == traders
    for iid, inv in syncs.items():
        stop_at = next(t for t, what in desk.cloud.machines[iid].events if what == "stop")
        assert inv.ended is not None and inv.ended.timestamp() <= stop_at


def test_day_two_resumes_on_the_same_hosts(desk: AwsDay, day_one: dict[str, Any]) -> None:
    assert desk.cloud is not None
    hosts_before = set(desk.cloud.machines)
    first = day_one["report"].bootstrap_s
    day_two = _run_day(desk, DAY_TWO)
    assert set(desk.cloud.machines) == hosts_before
    second = day_two["report"].bootstrap_s
    assert set(second) == set(first)
    ids_one = {o["client_order_id"] for o in day_one["orders"]}
    ids_two = [o["client_order_id"] for o in day_two["orders"]]
    assert ids_two and not ids_one & set(ids_two), "an order id was reused across days"
    assert all(cid.startswith("gw-") for cid in ids_two)
    assert desk.journal_shares((DAY_TWO,)) == desk.broker_shares(day_two["orders"])
    assert desk.net(desk.journal_shares((DAY_ONE, DAY_TWO))) == day_two["positions"]
    for prefix in desk.model_prefixes:
        env = day_two["environments"][desk.spec(prefix).instance_name(desk.env)]
        assert not [k for k in env if k.startswith("APCA_")]
    for prefix in desk.model_prefixes:
        day_one_key = f"{prefix}/live/{DAY_ONE.isoformat()}/trades_{DAY_ONE.isoformat()}.csv"
        day_two_key = f"{prefix}/live/{DAY_TWO.isoformat()}/trades_{DAY_TWO.isoformat()}.csv"
        objects = desk.bucket_objects(f"{prefix}/live/")
        assert day_one_key in objects and day_two_key in objects, sorted(objects)
    for name, seconds in second.items():
        assert seconds <= first[name], (
            f"{name}: second bootstrap {seconds:.0f} s > first {first[name]:.0f} s"
        )


# -- fault drills ---------------------------------------------------------------------------


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
        # the operator sees it too: `fleet status` reads the host's units from its systemd
        status = desk.fleet_status(day)
        (row,) = [r for r in status["instances"] if r["name"] == host]
        (unit,) = [u for u in row["units"] if u["unit"] == "algostack-trader.service"]
        assert unit["failing"] and unit["verdict"].startswith(("failed", "restarting")), unit
        assert any(
            f.startswith(f"{host}: algostack-trader.service") for f in status["failing_units"]
        )
    finally:
        for key, body in original.items():
            s3.put_object(Bucket=desk.bucket, Key=key, Body=body)
    # The unit's journal lines (journalctl's "Mon DD HH:MM:SS", each after a newline, JSON-
    # escaped in the fleet report) are in the message, and only the broken host failed: the
    # other trader bootstrapped.
    stamp = r"(?:^|\s|\\n)[A-Z][a-z]{2} \d{2} \d\d:\d\d:\d\d\b"
    assert re.search(stamp, error), error[-1500:]
    for other in desk.model_prefixes[1:]:
        assert desk.spec(other).instance_name(desk.env) not in error
    again = _trading(desk, day, ingest)
    assert again.ok, again.error
    (row,) = [r for r in desk.fleet_status(day)["instances"] if r["name"] == host]
    (unit,) = [u for u in row["units"] if u["unit"] == "algostack-trader.service"]
    assert (unit["active"], unit["sub"]) == ("active", "running"), unit


def test_drill_trader_hung_on_its_host_is_restarted_by_systemds_watchdog(desk: AwsDay) -> None:
    """The trader the crash drill above left running is stopped (SIGSTOP): alive, feeding
    systemd's watchdog no more. systemd aborts it after WatchdogSec (SIGABRT, and SIGCONT
    so that a stopped process takes it: its stacks go to the journal) and restarts it, and
    the new one comes up ready. Before the watchdog it stayed stopped, trading nothing, and
    its unit said active (running) for the rest of the session."""
    assert desk.cloud is not None
    name = desk.spec(desk.model_prefixes[0]).instance_name(desk.env)
    host = desk.cloud.by_name(name).host
    unit = "algostack-trader.service"

    def show() -> dict[str, str]:
        props = "MainPID,NRestarts,ActiveState,SubState"
        out = host.nsenter(["systemctl", "show", "-p", props, unit]).stdout
        return dict(line.partition("=")[::2] for line in out.splitlines())

    before = show()
    assert before["ActiveState"] == "active", f"run the module in order: {unit} {before}"
    host.nsenter(["kill", "-STOP", before["MainPID"]])
    deadline = time.monotonic() + WATCHDOG_S + ABORT_TIMEOUT_S + RESTART_SEC + 120
    now = show()
    while not (
        now["MainPID"] not in ("0", before["MainPID"])
        and (now["ActiveState"], now["SubState"]) == ("active", "running")
    ):
        assert time.monotonic() < deadline, f"{unit} on {name} was not restarted: {now}"
        time.sleep(1.0)
        now = show()
    assert int(now["NRestarts"]) == int(before["NRestarts"]) + 1, now
    journal = host.nsenter(["journalctl", "-u", unit, "--no-pager", "-o", "cat"]).stdout
    assert "Watchdog timeout" in journal, journal[-2000:]
    # where it hung: the abort dumped the stopped process's stacks into its journal
    assert "Fatal Python error: Aborted" in journal, journal[-2000:]


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
