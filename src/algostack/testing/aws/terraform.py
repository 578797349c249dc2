"""Terraform run offline against the committed roots: the mirrored hashicorp/aws provider,
state and plugin data in a scratch directory, fake credentials; nothing under infra/ is
written but the gitignored lock file."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from algostack.errors import FatalError

AWS_PROVIDER = "registry.terraform.io/hashicorp/aws"
MIRROR_CANDIDATES = (
    "/opt/tf-plugins",
    "~/.terraform.d/plugins",
    "~/.local/share/terraform/plugins",
    "/usr/local/share/terraform/plugins",
    "/usr/share/terraform/plugins",
)


def find_mirror(configured: str | None = None) -> Path | None:
    """A filesystem mirror holding hashicorp/aws: ``configured`` first, then known places."""
    for cand in ([configured] if configured else []) + list(MIRROR_CANDIDATES):
        path = Path(cand).expanduser()
        if (path / AWS_PROVIDER).is_dir():
            return path
    return None


def write_cli_config(path: Path, mirror: Path, cache_dir: Path) -> Path:
    """A CLI config installing hashicorp/aws from ``mirror`` only (never the network)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'plugin_cache_dir = "{cache_dir}"\n'
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path    = "{mirror}"\n'
        f'    include = ["{AWS_PROVIDER}"]\n  }}\n'
        f'  direct {{\n    exclude = ["{AWS_PROVIDER}"]\n  }}\n'
        "}\n"
    )
    return path


@dataclass
class Terraform:
    """``terraform`` in one root, with its data dir and state in ``scratch``."""

    root: Path
    scratch: Path
    binary: str = "terraform"
    mirror: Path | None = None

    def __post_init__(self) -> None:
        found = shutil.which(self.binary)
        mirror = self.mirror or find_mirror(os.environ.get("ALGOSTACK_TF_MIRROR"))
        if found is None or mirror is None:
            raise FatalError(
                "the emulated AWS day needs terraform on the PATH and a filesystem mirror of "
                f"hashicorp/aws (set ALGOSTACK_TF_MIRROR; looked in {', '.join(MIRROR_CANDIDATES)})"
            )
        self.binary = found
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.cli_config = write_cli_config(
            self.scratch / "cli.tfrc", mirror, self.scratch.parent / "tf-plugin-cache"
        )
        self.state = self.scratch / "terraform.tfstate"

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of every run: no real credentials, ever."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))}
        env.update(
            TF_CLI_CONFIG_FILE=str(self.cli_config),
            TF_DATA_DIR=str(self.scratch / "data"),
            TF_IN_AUTOMATION="1",
            TF_INPUT="0",
            CHECKPOINT_DISABLE="1",
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 - never a real credential
            AWS_DEFAULT_REGION="us-east-1",
            AWS_EC2_METADATA_DISABLED="true",
        )
        env.update(extra or {})
        return env

    def run(self, *args: str, timeout_s: float = 900) -> subprocess.CompletedProcess[str]:
        """Run ``terraform <args>`` in the root; raise with its output when it fails."""
        proc = subprocess.run(
            [self.binary, *args],
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if proc.returncode != 0:
            raise FatalError(
                f"terraform {args[0]} failed in {self.root} ({proc.returncode}):\n"
                f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        return proc

    def init(self) -> None:
        """``terraform init -backend=false`` (offline)."""
        self.run("init", "-no-color", "-backend=false", "-input=false")

    def apply(self, variables: dict[str, str]) -> None:
        """``terraform apply`` with ``variables`` (after the root's terraform.tfvars)."""
        self.run(
            "apply", "-auto-approve", "-no-color", f"-state={self.state}", *self._vars(variables)
        )

    def destroy(self, variables: dict[str, str]) -> None:
        """``terraform destroy``."""
        self.run(
            "destroy",
            "-auto-approve",
            "-no-color",
            "-refresh=false",
            f"-state={self.state}",
            *self._vars(variables),
        )

    def outputs(self) -> dict[str, object]:
        """The root's outputs (values only)."""
        import json

        proc = self.run("output", "-json", "-no-color", f"-state={self.state}")
        return {k: v["value"] for k, v in json.loads(proc.stdout).items()}

    @staticmethod
    def _vars(variables: dict[str, str]) -> list[str]:
        out = ["-var-file=terraform.tfvars"]
        for key, value in variables.items():
            out += ["-var", f"{key}={value}"]
        return out
