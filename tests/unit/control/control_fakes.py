"""The controller tests' fakes: fake time, an EC2 overlay for states moto cannot produce,
and ``Aws``, the clients and fakes one test gets (conftest.py builds it). A module of its
own name: ``from control_fakes import ...`` finds whichever conftest pytest imported first."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse

from algostack.control.fakes import FakeSsm
from algostack.control.runtime import Clients, Deadline, Runtime

REGION = "us-east-1"
EPOCH_2026_11_27_1330Z = 1795786200.0  # 2026-11-27T13:30:00Z = 08:30 New York


class FakeTime:
    """A monotonic clock and a sleep that advances it; ``wall`` is epoch seconds."""

    def __init__(self, wall0: float = EPOCH_2026_11_27_1330Z) -> None:
        self.now = 1000.0
        self.wall0 = wall0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.slept.append(seconds)
        self.now += seconds

    def wall(self) -> float:
        return self.wall0 + self.now - 1000.0

    @property
    def runtime(self) -> Runtime:
        return Runtime(clock=self.clock, sleep=self.sleep, wall=self.wall)

    def deadline(self, seconds: float) -> Deadline:
        return Deadline(self.now + seconds, self.clock)


@dataclass
class Ec2Overlay:
    """Script EC2 answers moto cannot give, through botocore hooks on the real client.

    ``statuses[id]``: a list of (state, system, instance) consumed one per
    DescribeInstanceStatus call (the last one repeats). ``describe_state[id]``: the state
    DescribeInstances reports. ``reasons[id]``: its StateReason message.
    ``start_errors[id]``: error codes raised by successive StartInstances calls naming it.
    """

    statuses: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    describe_state: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    start_errors: dict[str, list[str]] = field(default_factory=dict)
    start_calls: list[list[str]] = field(default_factory=list)

    def attach(self, client: Any) -> None:
        ev = client.meta.events
        ev.register("after-call.ec2.DescribeInstanceStatus", self._status)
        ev.register("after-call.ec2.DescribeInstances", self._describe)
        ev.register("before-call.ec2.StartInstances", self._start)

    def _status(self, parsed: dict[str, Any], **_: Any) -> None:
        for st in parsed.get("InstanceStatuses", []):
            seq = self.statuses.get(st["InstanceId"])
            if not seq:
                continue
            state, system, inst = seq.pop(0) if len(seq) > 1 else seq[0]
            st["InstanceState"] = {"Name": state}
            st["SystemStatus"] = {"Status": system}
            st["InstanceStatus"] = {"Status": inst}

    def _describe(self, parsed: dict[str, Any], **_: Any) -> None:
        for res in parsed.get("Reservations", []):
            for inst in res.get("Instances", []):
                iid = inst["InstanceId"]
                if iid in self.describe_state:
                    inst["State"] = {"Name": self.describe_state[iid]}
                if iid in self.reasons:
                    inst["StateReason"] = {
                        "Code": "Client.InternalError",
                        "Message": self.reasons[iid],
                    }

    def _start(self, params: dict[str, Any], **_: Any) -> Any:
        from urllib.parse import parse_qs

        body = params.get("body") or ""
        if isinstance(body, dict):  # the query protocol keeps a dict until it is sent
            items = {k: [str(v)] for k, v in body.items()}
        else:
            items = parse_qs(body.decode() if isinstance(body, bytes) else str(body))
        ids = [v[0] for k, v in sorted(items.items()) if k.startswith("InstanceId")]
        self.start_calls.append(ids)
        for iid in ids:
            errs = self.start_errors.get(iid)
            if errs:
                code = errs.pop(0)
                http = AWSResponse("https://ec2.fake", 400, {}, None)
                return http, {
                    "Error": {"Code": code, "Message": f"fake {code} for {iid}"},
                    "ResponseMetadata": {"HTTPStatusCode": 400},
                }
        return None


@dataclass
class Aws:
    clients: Clients
    ssm_fake: FakeSsm
    overlay: Ec2Overlay
    time: FakeTime
    ami: str

    def launch(
        self,
        name: str,
        *,
        env: str = "dev",
        role: str = "trader",
        count: int = 1,
        tags: dict[str, str] | None = None,
        state: str = "running",
    ) -> list[str]:
        all_tags = {
            "Name": name,
            "Environment": env,
            "Project": "algostack",
            "Role": role,
            **(tags or {}),
        }
        resp = self.clients.ec2.run_instances(
            ImageId=self.ami,
            MinCount=count,
            MaxCount=count,
            InstanceType="t3.small",
            TagSpecifications=[
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": k, "Value": v} for k, v in all_tags.items()],
                }
            ],
        )
        ids = [i["InstanceId"] for i in resp["Instances"]]
        if state == "stopped":
            self.clients.ec2.stop_instances(InstanceIds=ids)
        return ids

    def state(self, iid: str) -> str:
        r = self.clients.ec2.describe_instances(InstanceIds=[iid])
        return str(r["Reservations"][0]["Instances"][0]["State"]["Name"])
