"""The emulated AWS day, timed: Terraform as committed applied to moto, every instance a
real systemd host, two session days on the same hosts.

Figures: ``ready_s`` (ingest invocation -> every trader heartbeating, first day),
``bootstrap_s_p50`` / ``bootstrap_s_max`` (run.sh wall time per host, both days) and the
second day's bootstrap against the first's (``second_over_first``, target <= 1/3),
``orders_at_broker`` (the fake Alpaca's order count), ``journals_synced`` (models whose
trades file in the bucket equals the host's journal), ``hosts_stopped``. The baseline of
the ratio is the first day of the same run. Needs root (systemd-nspawn); takes a few minutes,
``--quick`` streams a shorter session (it cannot finish in 60 s: hosts install algostack).

Usage: ``.venv/bin/python bench/aws_day.py [--quick] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from algostack.testing.aws.day import AwsDay, DayReport

DAYS = (date(2026, 11, 30), date(2026, 12, 1))


def _synced(desk: AwsDay, day: date) -> int:
    count = 0
    for prefix in desk.model_prefixes:
        key = f"{prefix}/live/{day}/trades_{day}.csv"
        objects = desk.bucket_objects(f"{prefix}/live/{day}/")
        local = desk.journal(prefix, f"trades_{day}.csv")
        if key in objects and local.exists() and objects[key] == local.read_bytes():
            count += 1
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="stream 120 minutes a day")
    parser.add_argument("--keep", type=Path, default=None, help="work directory to keep")
    args = parser.parse_args()
    minutes = 120 if args.quick else 390
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="aws-day-"))
    t0 = time.monotonic()
    reports: list[DayReport] = []
    rows = []
    ok = True
    with AwsDay(workdir, progress=lambda m: print(f"  {m}", file=sys.stderr, flush=True)) as desk:
        setup_s = time.monotonic() - t0
        assert desk.broker is not None and desk.cloud is not None
        for day in DAYS:
            report = desk.start_day(day)
            reports.append(report)
            started = all(inv.ok for inv in report.invocations) and len(report.invocations) == 2
            if not started:
                ok = False
                for inv in report.invocations:
                    print(f"{inv.name}: {inv.error}", file=sys.stderr)
                break
            desk.stream_session(day, minutes=minutes)
            shutdown = desk.end_day(day)
            if not shutdown.ok:
                print(f"{shutdown.name}: {shutdown.error}", file=sys.stderr)
            stopped = sum(m.moto._state.name == "stopped" for m in desk.cloud.machines.values())
            synced = _synced(desk, day)
            rows.append((day, report, len(desk.broker.orders()), synced, stopped, shutdown.ok))
            ok = ok and shutdown.ok and synced == len(desk.model_prefixes)
        hosts = len(desk.cloud.machines)
        orders = len(desk.broker.orders())
    boots = [s for r in reports for s in r.bootstrap_s.values()]
    first = reports[0].bootstrap_s if reports else {}
    second = reports[1].bootstrap_s if len(reports) > 1 else {}
    ratio = max(second[h] / first[h] for h in second if first.get(h)) if second and first else None
    stopped = rows[-1][4] if rows else 0
    ok = ok and len(rows) == len(DAYS) and stopped == hosts and orders > 0
    head = ("ready s", "run.sh p50", "run.sh max", "orders", "synced", "stopped")
    print(f"{'day':<12}" + "".join(f"{h:>12}" for h in head))
    for day, report, n_orders, synced, n_stopped, _ in rows:
        values = list(report.bootstrap_s.values()) or [0.0]
        ready = f"{report.ready_s:.1f}" if report.ready_s is not None else "-"
        print(
            f"{day!s:<12}{ready:>12}{statistics.median(values):>12.1f}{max(values):>12.1f}"
            f"{n_orders:>12}{synced:>12}{n_stopped:>12}"
        )
    print(
        f"setup (image, git, moto, terraform apply): {setup_s:.1f} s; second/first run.sh: {ratio}"
    )
    result = {
        "hosts": hosts,
        "orders_at_broker": orders,
        "journals_synced": rows[-1][3] if rows else 0,
        "hosts_stopped": stopped,
        "ready_s": round(reports[0].ready_s, 1) if reports and reports[0].ready_s else None,
        "bootstrap_s_p50": round(statistics.median(boots), 1) if boots else None,
        "bootstrap_s_max": round(max(boots), 1) if boots else None,
        "second_over_first": round(ratio, 3) if ratio is not None else None,
        "setup_s": round(setup_s, 1),
        "ok": ok,
    }
    print(json.dumps(result))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
