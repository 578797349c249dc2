"""terraform init + validate of every module and every environment root (staged copy)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import infra_harness as h
import pytest

ROOTS = [f"modules/{m}" for m in h.MODULES] + [f"environments/{e}" for e in h.ENVIRONMENTS]


@pytest.mark.parametrize("rel", ROOTS)
def test_terraform_init_and_validate_succeed(
    tf: h.Terraform, init_root: Callable[[str], Path], rel: str
) -> None:
    path = init_root(rel)
    proc = tf.run(path, "validate", "-no-color")
    assert "The configuration is valid" in proc.stdout


def test_terraform_validate_misspelled_argument_fails_clearly(
    tf: h.Terraform, staged: Path, tmp_path: Path
) -> None:
    import shutil

    bad = tmp_path / "shutdown"
    shutil.copytree(staged / "modules" / "trading_server_shutdown", bad)
    lam = bad / "lambda.tf"
    lam.write_text(
        lam.read_text().replace("reserved_concurrent_executions", "reserved_concurrency")
    )
    tf.run(bad, "init", "-no-color", "-backend=false")
    proc = tf.run(bad, "validate", "-no-color", check=False)
    assert proc.returncode != 0
    assert "reserved_concurrency" in proc.stderr
