"""A fake SSM command service for tests and benchmarks, behind the real boto3 client.

moto implements neither DescribeInstanceInformation nor ListCommandInvocations, never fails a
command and has no output or timing. ``FakeSsm.attach(client)`` answers SendCommand,
ListCommandInvocations, GetCommandInvocation and DescribeInstanceInformation through
botocore's ``before-call`` hook (the same hook botocore's Stubber uses), so the helpers run
their real serialisation and error paths. Everything else on the client (Parameter Store)
goes to moto or AWS as usual. Stdlib + botocore only; not used by the handlers.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse


@dataclass
class Outcome:
    """How one command ends on one instance, and how long it runs."""

    status: str = "Success"
    exit_code: int = 0
    stdout: str = ""
    stderr: str = ""
    duration_s: float = 0.0


@dataclass
class _Command:
    command_id: str
    instances: list[str]
    sent_at: float
    script: str
    params: dict[str, Any]
    lists: int = 0
    gets: Counter[str] = field(default_factory=Counter)


def _ok(body: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
    body = {**body, "ResponseMetadata": {"HTTPStatusCode": 200, "RetryAttempts": 0}}
    return AWSResponse("https://ssm.fake", 200, {}, None), body


def _err(code: str, message: str, status: int = 400) -> tuple[AWSResponse, dict[str, Any]]:
    body = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": 0},
    }
    return AWSResponse("https://ssm.fake", status, {}, None), body


class FakeSsm:
    """Scripted SSM agents and commands.

    ``agent_delay_s``: an instance's agent reads Online this long after it is first asked
    about (absent before: "not registered"). ``agents`` pins a PingStatus per instance.
    ``outcome(instance_id, script)`` decides each command's end (default: success at once).
    ``unlisted_polls``: ListCommandInvocations omits a new command's invocations this many
    times; ``missing_gets``: GetCommandInvocation answers InvocationDoesNotExist this many
    times per invocation (the race right after SendCommand). ``send_errors``: error codes
    the next SendCommand calls raise, in order.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        agent_delay_s: float = 0.0,
        agents: dict[str, str] | None = None,
        outcome: Callable[[str, str], Outcome] | None = None,
        unlisted_polls: int = 0,
        missing_gets: int = 0,
        send_errors: list[str] | None = None,
    ) -> None:
        self.clock = clock
        self.agent_delay_s = agent_delay_s
        self.agents = dict(agents or {})
        self.outcome = outcome or (lambda iid, script: Outcome())
        self.unlisted_polls = unlisted_polls
        self.missing_gets = missing_gets
        self.send_errors = list(send_errors or [])
        self.commands: dict[str, _Command] = {}
        self.first_seen: dict[str, float] = {}
        self.calls: Counter[str] = Counter()
        self._outcomes: dict[tuple[str, str], Outcome] = {}
        self._lock = threading.Lock()

    def attach(self, client: Any) -> Any:
        """Answer the command and agent calls of ``client`` (an SSM client); return it."""
        ops = {
            "SendCommand": self._send,
            "ListCommandInvocations": self._list,
            "GetCommandInvocation": self._get,
            "DescribeInstanceInformation": self._describe,
        }
        for op, fn in ops.items():
            client.meta.events.register(f"before-call.ssm.{op}", self._wrap(op, fn))
        return client

    def _wrap(self, op: str, fn: Callable[[dict[str, Any]], Any]) -> Callable[..., Any]:
        def handler(params: dict[str, Any], **_: Any) -> Any:
            body = params.get("body") or b"{}"
            args = json.loads(body.decode() if isinstance(body, bytes) else body)
            with self._lock:
                self.calls[op] += 1
                return fn(args)

        return handler

    def _send(self, args: dict[str, Any]) -> Any:
        if self.send_errors:
            code = self.send_errors.pop(0)
            return _err(code, f"fake {code}")
        cid = str(uuid.uuid4())
        script = "\n".join(args.get("Parameters", {}).get("commands", []))
        ids = list(args.get("InstanceIds", []))
        self.commands[cid] = _Command(cid, ids, self.clock(), script, args)
        for iid in ids:
            self._outcomes[(cid, iid)] = self.outcome(iid, script)
        return _ok({"Command": {"CommandId": cid, "InstanceIds": ids, "Status": "Pending"}})

    def _state(self, cmd: _Command, iid: str) -> tuple[Outcome, str]:
        out = self._outcomes[(cmd.command_id, iid)]
        done = self.clock() - cmd.sent_at >= out.duration_s
        return out, (out.status if done else "InProgress")

    def _list(self, args: dict[str, Any]) -> Any:
        items = []
        if "CommandId" in args:
            cmd = self.commands.get(args["CommandId"])
            if cmd is None:
                return _err("InvalidCommandId", "no such command")
            cmd.lists += 1
            if cmd.lists > self.unlisted_polls:
                for iid in cmd.instances:
                    _, status = self._state(cmd, iid)
                    items.append(
                        {
                            "CommandId": cmd.command_id,
                            "InstanceId": iid,
                            "Status": status,
                            "StatusDetails": status,
                        }
                    )
        elif "InstanceId" in args:
            for cmd in reversed(list(self.commands.values())):
                if args["InstanceId"] in cmd.instances:
                    _, status = self._state(cmd, args["InstanceId"])
                    items.append(
                        {
                            "CommandId": cmd.command_id,
                            "InstanceId": args["InstanceId"],
                            "Status": status,
                            "Comment": cmd.params.get("Comment", ""),
                        }
                    )
                    break
        return _ok({"CommandInvocations": items})

    def _get(self, args: dict[str, Any]) -> Any:
        cmd = self.commands.get(args.get("CommandId", ""))
        iid = args.get("InstanceId", "")
        if cmd is None or iid not in cmd.instances:
            return _err("InvocationDoesNotExist", "no such invocation")
        cmd.gets[iid] += 1
        if cmd.gets[iid] <= self.missing_gets:
            return _err("InvocationDoesNotExist", "invocation not yet visible")
        out, status = self._state(cmd, iid)
        done = status != "InProgress"
        return _ok(
            {
                "CommandId": cmd.command_id,
                "InstanceId": iid,
                "Status": status,
                "StatusDetails": status,
                "ResponseCode": out.exit_code if done else -1,
                "StandardOutputContent": out.stdout[:24_000] if done else "",
                "StandardErrorContent": out.stderr[:8_000] if done else "",
                "StandardOutputUrl": "",
                "StandardErrorUrl": "",
            }
        )

    def _describe(self, args: dict[str, Any]) -> Any:
        ids: list[str] = []
        for f in args.get("Filters", []):
            if f.get("Key") == "InstanceIds":
                ids.extend(f.get("Values", []))
        now = self.clock()
        items = []
        for iid in ids:
            first = self.first_seen.setdefault(iid, now)
            if iid in self.agents:
                items.append({"InstanceId": iid, "PingStatus": self.agents[iid]})
            elif now - first >= self.agent_delay_s:
                items.append({"InstanceId": iid, "PingStatus": "Online"})
        return _ok({"InstanceInformationList": items})
