"""Helpers for the infra tests: find the toolchain, build the Lambda zips with the project's own
command, run terraform on the committed roots and moto_server. Terraform's working data
(TF_DATA_DIR) and state live in temporary directories; nothing under infra/ is copied or
edited, and only gitignored files (.terraform.lock.hcl) are written there. Nothing here talks
to anything but loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions

from algostack.testing.aws import terraform as tf_offline
from algostack.testing.aws.terraform import MIRROR_CANDIDATES as MIRROR_CANDIDATES
from algostack.testing.aws.terraform import write_cli_config as write_cli_config

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
SRC = REPO / "src"
MODULES = ("alpaca_websocket", "trading_server", "trading_server_shutdown")
# Internal modules (called by the ones above, never by an environment root).
INTERNAL_MODULES = ("controller_lambda",)
ENVIRONMENTS = ("dev", "qa", "prod")
HCL_OPTIONS = SerializationOptions(
    with_comments=False, explicit_blocks=False, strip_string_quotes=True
)


def load_hcl(path: Path) -> dict[str, Any]:
    """Parse one HCL file into python-hcl2's dict-of-lists form."""
    with path.open() as fh:
        return hcl2.load(fh, serialization_options=HCL_OPTIONS)


def find_terraform() -> str | None:
    """Return the terraform binary on the PATH, or None."""
    return shutil.which("terraform")


def find_mirror() -> Path | None:
    """Return a mirror holding hashicorp/aws: ALGOSTACK_TF_MIRROR, then well-known places."""
    return tf_offline.find_mirror(os.environ.get("ALGOSTACK_TF_MIRROR"))


def find_shellcheck() -> str | None:
    """Return the shellcheck binary, or None."""
    return shutil.which("shellcheck")


def find_checkov() -> Path | None:
    """Return checkov from its own virtualenv (make tools), or None."""
    path = REPO / ".venv-checkov" / "bin" / "checkov"
    return path if path.exists() else None


def find_moto_server() -> Path | None:
    """Return the moto_server script next to this interpreter, or None."""
    path = Path(sys.executable).parent / "moto_server"
    return path if path.exists() else None


def free_port() -> int:
    """Return a free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- Lambda packaging: the project's one command ------------------------------------------


def find_algostack() -> Path:
    """The ``algostack`` console script of this virtualenv."""
    path = Path(sys.executable).parent / "algostack"
    if not path.exists():
        raise AssertionError(f"{path} is missing: run `make venv`")
    return path


def build_lambdas(out: Path) -> dict[str, dict[str, Any]]:
    """Run ``algostack lambdas package --out <out> --json``; return module -> its report."""
    proc = subprocess.run(
        [str(find_algostack()), "lambdas", "package", "--out", str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"algostack lambdas package failed:\n{proc.stdout}\n{proc.stderr}")
    return {p["module"]: p for p in json.loads(proc.stdout)}


# --- Running terraform and moto_server ----------------------------------------------------


@dataclass
class Terraform:
    """Run terraform offline with the mirror config and fake credentials."""

    binary: str
    cli_config: Path
    work: Path
    roots: dict[str, TfRoot] = field(default_factory=dict)

    def root(self, rel: str) -> TfRoot:
        """The committed directory ``infra/<rel>`` with its own temporary data dir and state."""
        if rel not in self.roots:
            work = self.work / rel.replace("/", "__")
            work.mkdir(parents=True, exist_ok=True)
            self.roots[rel] = TfRoot(self, INFRA / rel, work)
        return self.roots[rel]

    def env(self, data_dir: Path | None = None) -> dict[str, str]:
        """Environment of every terraform run (no real credentials, ever)."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AWS_", "TF_"))
            or k == "TF_PLUGIN_CACHE_MAY_BREAK_DEPENDENCY_LOCK_FILE"
        }
        env.update(
            TF_CLI_CONFIG_FILE=str(self.cli_config),
            TF_IN_AUTOMATION="1",
            TF_INPUT="0",
            CHECKPOINT_DISABLE="1",
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_EC2_METADATA_DISABLED="true",
        )
        if data_dir is not None:
            env["TF_DATA_DIR"] = str(data_dir)
        return env

    def run(
        self,
        cwd: Path,
        *args: str,
        data_dir: Path | None = None,
        check: bool = True,
        timeout: float = 600,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``terraform <args>`` in ``cwd``; on failure raise with the output if ``check``."""
        proc = subprocess.run(
            [self.binary, *args],
            cwd=cwd,
            env=self.env(data_dir),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"terraform {' '.join(args)} failed in {cwd} ({proc.returncode}):\n"
                f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
            )
        return proc


@dataclass
class TfRoot:
    """A committed Terraform root run in place: ``.terraform`` in ``work`` (TF_DATA_DIR), the
    state in ``work/terraform.tfstate`` (``-state``), so runs never write into the tree but
    the provider lock file, which is gitignored."""

    tf: Terraform
    path: Path
    work: Path
    initialised: bool = False

    @property
    def state(self) -> Path:
        """The local state file of this root."""
        return self.work / "terraform.tfstate"

    def init(self) -> TfRoot:
        """``terraform init -backend=false`` once."""
        if not self.initialised:
            self.run("init", "-no-color", "-backend=false")
            self.initialised = True
        return self

    def run(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """Run terraform in the committed directory with this root's data dir."""
        return self.tf.run(
            self.path, *args, data_dir=self.work / ".terraform", check=check, timeout=timeout
        )

    def stateful(
        self, command: str, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """``plan``/``apply``/``destroy``/``output`` against this root's own state file."""
        return self.run(command, f"-state={self.state}", *args, check=check, timeout=timeout)


class MotoServer:
    """A moto_server subprocess on a free loopback port."""

    def __init__(self, script: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, MOTO_IAM_LOAD_MANAGED_POLICIES="true")
        self.proc = subprocess.Popen(
            [str(script), "-H", "127.0.0.1", "-p", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("moto_server exited at start") from None
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto_server did not listen within 30 s")

    def stop(self) -> None:
        """Terminate the server (only the process this object started)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
