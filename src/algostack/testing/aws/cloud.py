"""moto's server with the parts of AWS moto leaves out, made real on this machine.

EC2 instances are systemd hosts (``host.Host``) booted, stopped and checked as EC2 would;
SSM Run Command executes in them as the agent would; each has its own IMDSv2. What is
emulated and how: docs/operations.md, "The emulated AWS day". The patches are on moto's
classes (moto is the fake of AWS here, not project code) and are active only while an
:class:`EmulatedCloud` is running in this process.
"""

from __future__ import annotations

import base64
import functools
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from algostack.testing.aws.host import Host, HostSpec, RunResult, reap_orphans
from algostack.testing.aws.imds import Imds

log = logging.getLogger("algostack.testing.aws")

STDOUT_LIMIT = 24_000
STDERR_LIMIT = 8_000
DEFAULT_EXECUTION_TIMEOUT_S = 3600


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Machine:
    """The emulator's record of one instance."""

    instance_id: str
    name: str
    private_ip: str
    host: Host
    imds: Imds
    moto: Any
    phase: str = "pending"
    """pending | booting | running | stopping | stopped | terminated | failed"""
    error: str | None = None
    events: list[tuple[float, str]] = field(default_factory=list)

    def note(self, what: str) -> None:
        """Record a lifecycle event with its time (also in the cloud's log)."""
        self.events.append((time.time(), what))
        log.info("%s %s: %s", self.instance_id, self.name, what)


@dataclass
class Invocation:
    """One command on one instance, as SSM tracks it."""

    command_id: str
    instance_id: str
    comment: str
    requested: datetime
    status: str = "Pending"
    details: str = "Pending"
    code: int = -1
    stdout: str = ""
    stderr: str = ""
    started: datetime | None = None
    ended: datetime | None = None
    wall_s: float = 0.0
    script: str = ""

    def as_get(self) -> dict[str, Any]:
        """The GetCommandInvocation shape."""
        return {
            "CommandId": self.command_id,
            "InstanceId": self.instance_id,
            "Comment": self.comment,
            "DocumentName": "AWS-RunShellScript",
            "PluginName": "aws:runShellScript",
            "ResponseCode": self.code,
            "ExecutionStartDateTime": (self.started or self.requested).isoformat(),
            "ExecutionElapsedTime": f"PT{self.wall_s:.3f}S",
            "ExecutionEndDateTime": self.ended.isoformat() if self.ended else "",
            "Status": self.status,
            "StatusDetails": self.details,
            "StandardOutputContent": self.stdout[:STDOUT_LIMIT],
            "StandardOutputUrl": "",
            "StandardErrorContent": self.stderr[:STDERR_LIMIT],
            "StandardErrorUrl": "",
        }


class EmulatedCloud:
    """moto_server in a thread of this process, with real hosts behind EC2 and SSM."""

    def __init__(
        self,
        workdir: Path,
        image: Path,
        *,
        region: str = "us-east-1",
        host_environment: dict[str, str] | None = None,
        binds_ro: tuple[tuple[str, str], ...] = (),
        binds: tuple[tuple[str, str], ...] = (),
        host_files: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.image = image
        workdir.mkdir(parents=True, exist_ok=True)
        self._log_handler = logging.FileHandler(workdir / "cloud.log")
        self._log_handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(self._log_handler)
        log.setLevel(logging.INFO)
        self.region = region
        self.host_environment = dict(host_environment or {})
        self.binds_ro = binds_ro
        self.binds = binds
        self.host_files = dict(host_files or {})
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.machines: dict[str, Machine] = {}
        self.invocations: dict[tuple[str, str], Invocation] = {}
        self.impaired: set[str] = set()
        """Instance ids whose status checks never pass."""
        self._lock = threading.RLock()
        self._threads: list[threading.Thread] = []
        self._undo: list[Callable[[], None]] = []
        self._server: Any = None
        self._next_ip = 10

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> EmulatedCloud:
        """Start moto's server and install the hooks."""
        import os

        from moto.server import ThreadedMotoServer

        os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        reaped = reap_orphans()
        if reaped:
            log.info("powered off %d host(s) left by an emulator that is gone", reaped)
        self._install()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        return self

    def stop(self) -> None:
        """Power every host off (hard), stop moto and remove the hooks."""
        for machine in list(self.machines.values()):
            machine.host.kill()
            machine.imds.stop()
        if self._server is not None:
            self._server.stop()
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
        log.removeHandler(self._log_handler)
        self._log_handler.close()

    def __enter__(self) -> EmulatedCloud:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, service: str) -> Any:
        """A boto3 client of ``service`` on this cloud (fake credentials)."""
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto accepts any
        )

    def wait_idle(self, timeout_s: float = 300.0) -> None:
        """Wait until no host is booting or stopping."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                busy = [m for m in self.machines.values() if m.phase in ("booting", "stopping")]
            if not busy:
                return
            time.sleep(0.2)
        raise TimeoutError(f"hosts still busy: {[m.name for m in busy]}")

    def by_name(self, name: str) -> Machine:
        """The machine whose Name tag is ``name``."""
        for machine in self.machines.values():
            if machine.name == name:
                return machine
        raise KeyError(name)

    # -- EC2 -----------------------------------------------------------------------------

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _set_state(self, inst: Any, name: str, code: int) -> None:
        inst._state.name = name
        inst._state.code = code

    def _on_run(self, inst: Any) -> None:
        with self._lock:
            n = self._next_ip
            self._next_ip += 1
        ip = f"127.0.{n // 250}.{n % 250 + 2}"
        inst.nics[0].private_ip_address = ip
        tags = {t["key"]: t["value"] for t in inst.get_tags()} if hasattr(inst, "get_tags") else {}
        name = tags.get("Name") or inst.id
        encoded = inst.user_data
        raw = base64.b64decode(encoded.as_bytes()) if encoded is not None else b""
        role = "instance-role"
        profile = getattr(inst, "instance_profile", None)
        if profile is not None and getattr(profile, "roles", None):
            role = profile.roles[0].name
        imds = Imds(inst.id, self.region, role, ip)
        env = dict(self.host_environment)
        env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = imds.endpoint
        spec = HostSpec(
            instance_id=inst.id,
            private_ip=ip,
            user_data=raw,
            image=self.image,
            state_dir=self.workdir / "hosts" / inst.id,
            environment=env,
            binds_ro=self.binds_ro,
            binds=self.binds,
            files=self.host_files,
        )
        machine = Machine(inst.id, name, ip, Host(spec), imds, inst)
        with self._lock:
            self.machines[inst.id] = machine
        self._boot(machine)

    def _boot(self, machine: Machine) -> None:
        self._set_state(machine.moto, "pending", 0)
        machine.phase = "booting"
        machine.note("boot")

        def run() -> None:
            try:
                machine.host.boot()
            except Exception as exc:
                # As EC2 does with an instance that cannot launch: it ends terminated.
                machine.phase = "failed"
                machine.error = str(exc)
                machine.note(f"boot failed: {exc}")
                self._set_state(machine.moto, "terminated", 48)
                return
            machine.phase = "running"
            machine.note("running")
            self._set_state(machine.moto, "running", 16)

        self._spawn(run, f"boot-{machine.instance_id}")

    def _on_start(self, inst: Any, previous: str) -> None:
        machine = self.machines.get(inst.id)
        if machine is None or previous == "running" or machine.host.running:
            return
        self._boot(machine)

    def _on_stop(self, inst: Any, terminate: bool) -> None:
        machine = self.machines.get(inst.id)
        if machine is None:
            return
        final = ("terminated", 48) if terminate else ("stopped", 80)
        self._set_state(inst, "shutting-down" if terminate else "stopping", 32 if terminate else 64)
        machine.phase = "stopping"
        machine.note("terminate" if terminate else "stop")

        def run() -> None:
            try:
                machine.host.poweroff()
            finally:
                machine.phase = final[0]
                machine.note(final[0])
                self._set_state(inst, *final)
                if terminate:
                    machine.imds.stop()

        self._spawn(run, f"stop-{machine.instance_id}")

    def status_of(self, inst: Any) -> str:
        """``ok``, ``initializing`` or ``impaired`` for the instance's status checks."""
        machine = self.machines.get(inst.id)
        if machine is None:
            return "ok"
        if inst.id in self.impaired:
            return "impaired"
        return "ok" if machine.phase == "running" and machine.host.running else "initializing"

    # -- SSM -----------------------------------------------------------------------------

    def agent_online(self, instance_id: str) -> bool:
        """True when the host is up (the agent is a unit of the booted system)."""
        machine = self.machines.get(instance_id)
        return machine is not None and machine.phase == "running" and machine.host.running

    def _on_send(self, command: Any) -> None:
        params = command.parameters or {}
        script = "\n".join(params.get("commands", []))
        workdir = (params.get("workingDirectory") or [""])[0] or None
        timeout_s = float((params.get("executionTimeout") or [DEFAULT_EXECUTION_TIMEOUT_S])[0])
        command.status = "InProgress"
        command.status_details = "InProgress"
        now = datetime.now(UTC)
        for iid in command.instance_ids:
            inv = Invocation(command.command_id, iid, command.comment, now, script=script)
            with self._lock:
                self.invocations[(command.command_id, iid)] = inv
            machine = self.machines[iid]
            self._spawn(
                functools.partial(self._execute, machine, inv, workdir, timeout_s, command),
                f"ssm-{iid}",
            )

    def _execute(
        self, machine: Machine, inv: Invocation, workdir: str | None, timeout_s: float, cmd: Any
    ) -> None:
        inv.status, inv.details = "InProgress", "InProgress"
        inv.started = datetime.now(UTC)
        t0 = time.monotonic()
        try:
            result = machine.host.run_command(
                inv.command_id, inv.script, workdir=workdir, timeout_s=timeout_s
            )
        except Exception as exc:
            result = RunResult(1, "", f"{type(exc).__name__}: {exc}")
        inv.wall_s = time.monotonic() - t0
        inv.ended = datetime.now(UTC)
        inv.stdout, inv.stderr = result.stdout, result.stderr
        if result.timed_out:
            inv.status, inv.details, inv.code = "TimedOut", "ExecutionTimedOut", -1
        elif result.exit_code == 0:
            inv.status, inv.details, inv.code = "Success", "Success", 0
        else:
            inv.status, inv.details, inv.code = "Failed", "Failed", result.exit_code
        with self._lock:
            mine = [self.invocations[(inv.command_id, i)] for i in cmd.instance_ids]
        if all(i.status not in ("Pending", "InProgress") for i in mine):
            cmd.status = "Success" if all(i.status == "Success" for i in mine) else "Failed"
            cmd.status_details = cmd.status

    # -- moto hooks ----------------------------------------------------------------------

    def _patch(self, owner: Any, name: str, value: Any) -> None:
        had = name in owner.__dict__
        old = owner.__dict__.get(name)
        setattr(owner, name, value)

        def undo() -> None:
            if had:
                setattr(owner, name, old)
            else:
                delattr(owner, name)

        self._undo.append(undo)

    def _install(self) -> None:
        from moto.core.responses import ActionResult
        from moto.ec2.models.instances import Instance, InstanceBackend
        from moto.ssm.exceptions import SSMException
        from moto.ssm.models import SimpleSystemManagerBackend
        from moto.ssm.responses import SimpleSystemManagerResponse

        cloud = self
        run_instances = InstanceBackend.run_instances
        start_instances = InstanceBackend.start_instances
        stop_instances = InstanceBackend.stop_instances
        terminate_instances = InstanceBackend.terminate_instances

        def p_run(backend: Any, *args: Any, **kwargs: Any) -> Any:
            reservation = run_instances(backend, *args, **kwargs)
            for inst in reservation.instances:
                cloud._on_run(inst)
            return reservation

        def p_start(backend: Any, instance_ids: list[str]) -> Any:
            before = {i.id: i._state.name for i in backend.get_multi_instances_by_id(instance_ids)}
            out = start_instances(backend, instance_ids)
            for inst, _prev in out:
                cloud._on_start(inst, before.get(inst.id, ""))
            return out

        def p_stop(backend: Any, instance_ids: list[str]) -> Any:
            running = {
                i.id
                for i in backend.get_multi_instances_by_id(instance_ids)
                if i._state.name not in ("stopped", "stopping")
            }
            out = stop_instances(backend, instance_ids)
            for inst, _prev in out:
                if inst.id in running:
                    cloud._on_stop(inst, terminate=False)
            return out

        def p_terminate(backend: Any, instance_ids: list[str]) -> Any:
            out = terminate_instances(backend, instance_ids)
            for inst, _prev in out:
                cloud._on_stop(inst, terminate=True)
            return out

        def check(status: str) -> dict[str, Any]:
            passed = {"ok": "passed", "impaired": "failed"}.get(status, "initializing")
            return {"Status": status, "Details": [{"Name": "reachability", "Status": passed}]}

        def p_instance_status(inst: Any) -> dict[str, Any]:
            if inst._state.name != "running":
                return {"Status": "not-applicable"}
            return check(cloud.status_of(inst))

        self._patch(InstanceBackend, "run_instances", p_run)
        self._patch(InstanceBackend, "start_instances", p_start)
        self._patch(InstanceBackend, "stop_instances", p_stop)
        self._patch(InstanceBackend, "terminate_instances", p_terminate)
        self._patch(Instance, "instance_status", property(p_instance_status))
        self._patch(Instance, "system_status", property(p_instance_status))

        send_command = SimpleSystemManagerBackend.send_command
        get_invocation = SimpleSystemManagerBackend.get_command_invocation

        def p_send(backend: Any, *args: Any, **kwargs: Any) -> Any:
            # A copy: moto's Command extends the very list it is given.
            ids = list(kwargs.get("instance_ids") or [])
            offline = [i for i in ids if not cloud.agent_online(i)]
            if offline:
                raise SSMException(
                    "InvalidInstanceId",
                    f"Instances {offline} not in a valid state for account {backend.account_id}",
                )
            command = send_command(backend, *args, **kwargs)
            if not kwargs.get("targets"):
                # moto adds every instance of the region to a command without Targets;
                # SSM runs it on the instances named, only.
                command.instance_ids = list(dict.fromkeys(ids))
                command.target_count = len(command.instance_ids)
                command.invocations = [
                    command.invocation_response(i, "aws:runShellScript")
                    for i in command.instance_ids
                ]
            cloud._on_send(command)
            return command

        def p_get(
            backend: Any, command_id: str, instance_id: str, plugin_name: str | None
        ) -> dict[str, Any]:
            inv = cloud.invocations.get((command_id, instance_id))
            if inv is None:
                return get_invocation(backend, command_id, instance_id, plugin_name)
            return inv.as_get()

        def r_list_invocations(resp: Any) -> Any:
            command_id = resp._get_param("CommandId")
            instance_id = resp._get_param("InstanceId")
            details = bool(resp._get_param("Details", False))
            with cloud._lock:
                items = [
                    inv
                    for (c, i), inv in cloud.invocations.items()
                    if (not command_id or c == command_id) and (not instance_id or i == instance_id)
                ]
            out = []
            for inv in items:
                row: dict[str, Any] = {
                    "CommandId": inv.command_id,
                    "InstanceId": inv.instance_id,
                    "Comment": inv.comment,
                    "DocumentName": "AWS-RunShellScript",
                    "RequestedDateTime": inv.requested,
                    "Status": inv.status,
                    "StatusDetails": inv.details,
                }
                if details:
                    row["CommandPlugins"] = [
                        {
                            "Name": "aws:runShellScript",
                            "Status": inv.status,
                            "StatusDetails": inv.details,
                            "ResponseCode": inv.code,
                            "Output": (inv.stdout + inv.stderr)[:2500],
                        }
                    ]
                out.append(row)
            return ActionResult({"CommandInvocations": out})

        def r_describe_information(resp: Any) -> Any:
            wanted: set[str] | None = None
            for flt in resp._get_param("Filters", []) or []:
                if flt.get("Key") == "InstanceIds":
                    wanted = set(flt.get("Values", []))
            for flt in resp._get_param("InstanceInformationFilterList", []) or []:
                if flt.get("key") == "InstanceIds":
                    wanted = set(flt.get("valueSet", []))
            out = []
            with cloud._lock:
                machines = list(cloud.machines.values())
            for m in machines:
                if wanted is not None and m.instance_id not in wanted:
                    continue
                if m.phase == "terminated" or m.host.boots == 0:
                    continue
                out.append(
                    {
                        "InstanceId": m.instance_id,
                        "PingStatus": "Online"
                        if cloud.agent_online(m.instance_id)
                        else "ConnectionLost",
                        "LastPingDateTime": datetime.now(UTC),
                        "AgentVersion": "3.3.0.0",
                        "PlatformType": "Linux",
                        "PlatformName": "Debian GNU/Linux (emulated AMI)",
                        "ResourceType": "EC2Instance",
                        "IPAddress": m.private_ip,
                        "ComputerName": "ip-" + m.private_ip.replace(".", "-"),
                    }
                )
            return ActionResult({"InstanceInformationList": out})

        self._patch(SimpleSystemManagerBackend, "send_command", p_send)
        self._patch(SimpleSystemManagerBackend, "get_command_invocation", p_get)
        self._patch(SimpleSystemManagerResponse, "list_command_invocations", r_list_invocations)
        self._patch(
            SimpleSystemManagerResponse, "describe_instance_information", r_describe_information
        )
