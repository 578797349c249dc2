"""AWS API calls and wall time of the trading controller for N = 1, 10, 50, 200 traders.

moto (in-process) holds EC2 and Parameter Store; a fake SSM agent/command service answers
the SSM calls moto lacks, with realistic delays: the agent registers ``--agent-delay`` s
after it is first asked about and run.sh takes ``--command-s`` s. Calls are counted with
botocore's ``before-parameter-build`` hook (every API call, faked or not). The baseline is
N=1 in the same run; the last line is one JSON object.

    .venv/bin/python bench/fleet_calls.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from algostack.control import controllers, handlers
from algostack.control.config import ControlConfig
from algostack.control.fakes import FakeSsm, Outcome
from algostack.control.runtime import Clients, Runtime

SIZES = (1, 10, 50, 200)
OPS = (
    "DescribeInstances",
    "StartInstances",
    "DescribeInstanceStatus",
    "DescribeInstanceInformation",
    "SendCommand",
    "ListCommandInvocations",
    "GetCommandInvocation",
    "GetParameter",
    "PutParameter",
)


class Context:
    aws_request_id = "bench-request"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def one_run(
    n: int, agent_delay: float, command_s: float, script: Path
) -> tuple[Counter[str], float]:
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        clients = Clients(session.client("ec2"), session.client("ssm"), session.client("s3"))
        FakeSsm(
            time.monotonic,
            agent_delay_s=agent_delay,
            outcome=lambda iid, s: Outcome(stdout="started", duration_s=command_s),
        ).attach(clients.ssm)
        ec2 = clients.ec2
        ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]

        def launch(name: str, count: int, role: str) -> list[str]:
            tags = [
                {"Key": "Name", "Value": name},
                {"Key": "Environment", "Value": "qa"},
                {"Key": "Project", "Value": "algostack"},
                {"Key": "Role", "Value": role},
            ]
            r = ec2.run_instances(
                ImageId=ami,
                MinCount=count,
                MaxCount=count,
                TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
            )
            return [i["InstanceId"] for i in r["Instances"]]

        launch("alpaca-websocket-ingest-qa", 1, "ingest")
        ec2.stop_instances(InstanceIds=launch("trading-server-qa-SYM-xgb-1", n, "trader"))
        calls: Counter[str] = Counter()
        for client in (clients.ec2, clients.ssm, clients.s3):
            client.meta.events.register(
                "before-parameter-build",
                lambda model, **_: calls.update([model.name]),  # type: ignore[no-untyped-def]
            )
        cfg = ControlConfig(environment="qa", run_script=script, bucket="algo-model-deploy")
        t0 = time.perf_counter()
        out = handlers.handle(
            controllers.run_trading,
            {"trading_day": "2026-11-27"},
            Context(),
            clients=clients,
            config=cfg,
            runtime=Runtime(),
        )
        wall = time.perf_counter() - t0
        assert out["status"] == "ok" and out["counts"]["ok"] == n, out.get("counts")
        return calls, wall


def cpu_busy() -> float:
    """Fraction of CPU time busy over 0.2 s (the machine is shared)."""

    def snap() -> tuple[int, int]:
        vals = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        return sum(vals), vals[3] + vals[4]

    t1, i1 = snap()
    time.sleep(0.2)
    t2, i2 = snap()
    return 1.0 - (i2 - i1) / max(1, t2 - t1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="one repetition, short delays")
    ap.add_argument("--reps", type=int, default=None)
    args = ap.parse_args()
    reps = args.reps or (1 if args.quick else 3)
    agent_delay, command_s = (2.0, 2.0) if args.quick else (5.0, 5.0)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.pop("AWS_ENDPOINT_URL", None)
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "run.sh"
        script.write_text("#!/bin/bash\necho start traders\n")
        calls: dict[int, Counter[str]] = {}
        walls: dict[int, float] = {}
        busy: dict[int, float] = {}
        for n in SIZES:
            samples = []
            for _ in range(reps):
                busy[n] = cpu_busy()
                c, w = one_run(n, agent_delay, command_s, script)
                samples.append(w)
            calls[n], walls[n] = c, statistics.median(samples)
    head = f"{'N':>4} {'total':>6} " + " ".join(f"{op[:14]:>14}" for op in OPS) + f" {'wall s':>7}"
    print(
        f"trading controller, moto + fake SSM (agent {agent_delay}s, run.sh {command_s}s), "
        f"median of {reps}"
    )
    print(head)
    for n in SIZES:
        print(
            f"{n:>4} {sum(calls[n].values()):>6} "
            + " ".join(f"{calls[n][op]:>14}" for op in OPS)
            + f" {walls[n]:>7.2f}"
        )
    ratio = walls[200] / walls[1]
    print(
        f"wall N=200 / N=1 = {ratio:.2f} (target <= 2); cpu busy before runs: "
        + ", ".join(f"N={n}: {b:.0%}" for n, b in busy.items())
    )
    result: dict[str, Any] = {
        "calls": {str(n): sum(calls[n].values()) for n in SIZES},
        "calls_by_op": {str(n): dict(calls[n]) for n in SIZES},
        "wall_s": {str(n): round(walls[n], 3) for n in SIZES},
        "wall_ratio_200_vs_1": round(ratio, 3),
        "baseline": "N=1, same run",
        "reps": reps,
    }
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
