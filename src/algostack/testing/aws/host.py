"""One EC2 instance as a real systemd host: a ``systemd-nspawn`` container booted (``-b``) on
an overlay of the stand-in AMI. The overlay's upper directory is the instance's EBS volume:
it survives a stop and a start. The container shares this machine's network namespace, so
loopback servers (moto, the fake Alpaca, the git server, NATS on another host) are reachable.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from algostack.errors import FatalError

SSM_ROOT = "/var/lib/amazon/ssm"
REGISTRY = Path("/run/algostack-emulated-hosts")
"""One file per running container: ``<owner pid> <root>``, so a later run can power off what
a killed test left behind (by its cgroup, never by name)."""
CGROUP_NAME = "algostack-emulated"
BOOT_TIMEOUT_S = 120.0
POWEROFF_TIMEOUT_S = 240.0


@dataclass
class RunResult:
    """What a command run inside a host produced."""

    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool = False


@dataclass
class HostSpec:
    """What is fixed for the life of an instance."""

    instance_id: str
    private_ip: str
    user_data: bytes
    image: Path
    state_dir: Path
    environment: dict[str, str] = field(default_factory=dict)
    """systemd's DefaultEnvironment (what the SSM agent and every unit inherit)."""
    binds_ro: tuple[tuple[str, str], ...] = ()
    binds: tuple[tuple[str, str], ...] = ()
    files: dict[str, str] = field(default_factory=dict)
    """Extra files written into the host before each boot (path inside -> content)."""


def cgroup_roots() -> list[Path]:
    """The cgroup hierarchies a container must be placed in: the unified one on a cgroup v2
    host; ``name=systemd`` and the unified one on a hybrid host."""
    base = Path("/sys/fs/cgroup")
    if (base / "cgroup.controllers").exists():
        return [base]
    return [r for r in (base / "systemd", base / "unified") if (r / "cgroup.procs").exists()]


def machine_cgroups(machine: str) -> list[Path]:
    """The cgroups of one container (its own subtree in every hierarchy: nspawn with
    ``--keep-unit`` puts the container under the cgroup it is started in, and two containers
    sharing one would share their units' cgroups)."""
    return [root / CGROUP_NAME / machine for root in cgroup_roots()]


def _cgroup_pids(groups: list[Path]) -> set[int]:
    pids: set[int] = set()
    for group in groups:
        for procs in group.rglob("cgroup.procs") if group.is_dir() else []:
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(x) for x in procs.read_text().split())
    return pids


def kill_cgroups(groups: list[Path], timeout_s: float = 10.0) -> None:
    """SIGKILL every process in ``groups`` (container init first: that ends its PID
    namespace), then remove the emptied cgroups."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pids = _cgroup_pids(groups)
        if not pids:
            break
        for pid in sorted(pids):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    for group in groups:
        if not group.is_dir():
            continue
        for sub in sorted((d for d in group.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts)):
            with contextlib.suppress(OSError):
                sub.rmdir()
        with contextlib.suppress(OSError):
            group.rmdir()


def reap_orphans() -> int:
    """Power off (hard) the containers of emulator processes that are gone; return how many."""
    reaped = 0
    for entry in REGISTRY.glob("*") if REGISTRY.is_dir() else []:
        try:
            owner, root = entry.read_text().split()
        except (OSError, ValueError):
            entry.unlink(missing_ok=True)
            continue
        if Path(f"/proc/{owner}").exists():
            continue
        kill_cgroups(machine_cgroups(entry.name))
        subprocess.run(["umount", root], capture_output=True, check=False)
        entry.unlink(missing_ok=True)
        reaped += 1
    return reaped


class Host:
    """Boot, run commands in, and power off one container."""

    def __init__(self, spec: HostSpec) -> None:
        self.spec = spec
        self.upper = spec.state_dir / "upper"
        self.work = spec.state_dir / "work"
        self.root = spec.state_dir / "root"
        self.console = spec.state_dir / "console.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._leader: int | None = None
        self._lock = threading.Lock()
        self.boots = 0

    @property
    def machine(self) -> str:
        """The container's machine name (the instance id)."""
        return self.spec.instance_id

    @property
    def running(self) -> bool:
        """True while the container's systemd runs."""
        return self._proc is not None and self._proc.poll() is None and self._leader is not None

    def path(self, inside: str) -> Path:
        """The host-side path of a file inside the container (while mounted)."""
        return self.root / inside.lstrip("/")

    # -- lifecycle -----------------------------------------------------------------------

    def _mount(self) -> None:
        for d in (self.upper, self.work, self.root):
            d.mkdir(parents=True, exist_ok=True)
        if os.path.ismount(self.root):
            return
        opts = f"lowerdir={self.spec.image},upperdir={self.upper},workdir={self.work}"
        proc = subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o", opts, str(self.root)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise FatalError(f"{self.machine}: cannot mount its volume: {proc.stderr.strip()}")

    def _unmount(self) -> None:
        if os.path.ismount(self.root):
            subprocess.run(["umount", str(self.root)], capture_output=True, check=False)

    def _write_boot_files(self) -> None:
        cloud = self.path("/var/lib/cloud")
        (cloud / "data").mkdir(parents=True, exist_ok=True)
        (cloud / "instance").mkdir(parents=True, exist_ok=True)
        (cloud / "data" / "instance-id").write_text(self.spec.instance_id + "\n")
        (cloud / "instance" / "user-data.txt").write_bytes(self.spec.user_data)
        conf = self.path("/etc/systemd/system.conf.d/50-emulated-aws.conf")
        conf.parent.mkdir(parents=True, exist_ok=True)
        env = " ".join(
            shlex.quote(f"{k}={v}") if " " in v else f"{k}={v}"
            for k, v in sorted(self.spec.environment.items())
        )
        conf.write_text(f"[Manager]\nDefaultEnvironment={env}\n")
        (self.path("/etc/hostname")).write_text(
            "ip-" + self.spec.private_ip.replace(".", "-") + "\n"
        )
        for inside, content in self.spec.files.items():
            target = self.path(inside)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)

    def boot(self, timeout_s: float = BOOT_TIMEOUT_S) -> None:
        """Boot the container and wait until systemd reports the system up."""
        with self._lock:
            if self.running:
                return
            self._mount()
            self._write_boot_files()
            argv = [
                "systemd-nspawn",
                "--quiet",
                f"--directory={self.root}",
                f"--machine={self.machine}",
                "--register=no",
                "--keep-unit",
                "--boot",
                "--console=pipe",
                "--resolv-conf=bind-host",
            ]
            argv += [f"--bind-ro={src}:{dst}" for src, dst in self.spec.binds_ro]
            argv += [f"--bind={src}:{dst}" for src, dst in self.spec.binds]
            groups = machine_cgroups(self.machine)
            kill_cgroups(groups)  # what a killed run of the same instance left
            for group in groups:
                group.mkdir(parents=True, exist_ok=True)
            # Enter the cgroups first (a shell, not preexec_fn: this process has threads).
            enter = 'for g in $ALGOSTACK_CGROUPS; do echo $$ > "$g/cgroup.procs" || exit 90; done'
            env = dict(os.environ, ALGOSTACK_CGROUPS=" ".join(map(str, groups)))
            log = self.console.open("ab")
            self._proc = subprocess.Popen(
                ["sh", "-c", enter + '; exec "$@"', "sh", *argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,
            )
            log.close()
            REGISTRY.mkdir(parents=True, exist_ok=True)
            self._registry().write_text(f"{os.getpid()} {self.root}\n")
            self._leader = self._find_leader(timeout_s)
            self.boots += 1
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            proc = self.nsenter(["systemctl", "is-system-running"], timeout_s=30)
            state = proc.stdout.strip()
            if state in ("running", "degraded"):
                return
            if self._proc is None or self._proc.poll() is not None:
                raise FatalError(f"{self.machine}: systemd-nspawn exited at boot: {self._last()}")
            time.sleep(0.3)
        raise FatalError(f"{self.machine}: did not boot within {timeout_s:.0f} s: {self._last()}")

    def _last(self) -> str:
        """The console's last lines (why a boot failed), and where the rest is."""
        try:
            tail = self.console.read_text(errors="replace").strip().splitlines()[-3:]
        except OSError:
            tail = []
        return " | ".join(tail) + f" ({self.console})"

    def _find_leader(self, timeout_s: float) -> int:
        """The PID of the container's systemd (nspawn forks helpers before it: look for init)."""
        assert self._proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise FatalError(f"{self.machine}: systemd-nspawn exited at boot: {self._last()}")
            todo = [self._proc.pid]
            while todo:
                pid = todo.pop()
                with contextlib.suppress(OSError):
                    if (
                        pid != self._proc.pid
                        and Path(f"/proc/{pid}/comm").read_text().strip() == "systemd"
                    ):
                        return pid
                    todo += [
                        int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
                    ]
            time.sleep(0.05)
        raise FatalError(f"{self.machine}: no container systemd within {timeout_s:.0f} s")

    def poweroff(self, timeout_s: float = POWEROFF_TIMEOUT_S) -> None:
        """Shut the host down as ``shutdown -h`` would (units stop, ExecStopPost runs); pull
        the plug when it has not halted within ``timeout_s``."""
        with self._lock:
            proc = self._proc
            if proc is not None and proc.poll() is None and self._leader is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.nsenter(["systemctl", "poweroff", "--no-block"], timeout_s=30)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=timeout_s)
            self._halt()

    def kill(self) -> None:
        """Pull the plug (test teardown)."""
        with self._lock:
            self._halt()

    def _halt(self) -> None:
        kill_cgroups(machine_cgroups(self.machine))
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=30)
        self._proc = None
        self._leader = None
        self._unmount()
        self._registry().unlink(missing_ok=True)

    def _registry(self) -> Path:
        return REGISTRY / self.machine

    # -- inside the host -----------------------------------------------------------------

    def nsenter(
        self, argv: list[str], *, timeout_s: float = 60.0, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in the container's namespaces (as root); never raises on exit codes."""
        if self._leader is None:
            raise FatalError(f"{self.machine} is not running")
        return subprocess.run(
            ["nsenter", "-t", str(self._leader), "-a", *argv],
            input=stdin,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout_s,
            check=False,
        )

    def run_command(
        self, command_id: str, script: str, *, workdir: str | None, timeout_s: float
    ) -> RunResult:
        """Run one AWS-RunShellScript invocation as the SSM agent does.

        The commands are written to ``_script.sh`` in the command's orchestration directory
        (also the working directory unless ``workdir`` is given) and executed by ``sh``, as
        root, in a transient unit (so it inherits systemd's environment, like the agent's
        children); past ``timeout_s`` the unit is killed and the run counts as timed out.
        """
        orchestration = (
            f"{SSM_ROOT}/{self.machine}/document/orchestration/{command_id}"
            "/awsrunShellScript/0.awsrunShellScript"
        )
        local = self.path(orchestration)
        local.mkdir(parents=True, exist_ok=True)
        (local / "_script.sh").write_text(script)
        (local / "_script.sh").chmod(0o700)
        unit = f"ssm-{command_id[:8]}-{int(time.time() * 1000) % 100000}"
        argv = [
            "nsenter",
            "-t",
            str(self._leader),
            "-a",
            "systemd-run",
            "--quiet",
            "--wait",
            "--pipe",
            "--collect",
            f"--unit={unit}",
            f"--property=WorkingDirectory={workdir or orchestration}",
            "/bin/sh",
            "-c",
            f"{orchestration}/_script.sh",
        ]
        with (local / "stdout").open("w+b") as out, (local / "stderr").open("w+b") as err:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
            timed_out = False
            try:
                code = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                self.nsenter(["systemctl", "kill", "--signal=SIGKILL", f"{unit}.service"])
                try:
                    code = proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    code = proc.wait()
            out.seek(0)
            err.seek(0)
            stdout = out.read().decode(errors="replace")
            stderr = err.read().decode(errors="replace")
        return RunResult(code, stdout, stderr, timed_out)
