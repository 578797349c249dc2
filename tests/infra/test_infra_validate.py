"""terraform init + validate of every module and every environment root, as committed (run in
place: data dir in a temp dir, nothing under infra/ copied or edited)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import infra_harness as h
import pytest

ROOTS = [f"modules/{m}" for m in (*h.MODULES, *h.INTERNAL_MODULES)] + [
    f"environments/{e}" for e in h.ENVIRONMENTS
]


def _tracked_infra_files() -> dict[str, str]:
    """Every file git tracks under infra/ (path -> content), to prove the runs edit nothing."""
    names = subprocess.run(
        ["git", "ls-files", "infra"], cwd=h.REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    return {n: (h.REPO / n).read_text(errors="replace") for n in names if (h.REPO / n).is_file()}


@pytest.fixture(scope="module")
def tracked_before() -> dict[str, str]:
    return _tracked_infra_files()


@pytest.mark.parametrize("rel", ROOTS)
def test_terraform_init_and_validate_succeed_on_the_committed_tree(
    tf: h.Terraform, init_root: Callable[[str], h.TfRoot], rel: str, tracked_before: dict[str, str]
) -> None:
    root = init_root(rel)
    assert root.path == h.INFRA / rel
    assert (root.work / ".terraform" / "modules" / "modules.json").exists() or rel.startswith(
        "modules/"
    ), "TF_DATA_DIR keeps .terraform out of the tree"
    proc = root.run("validate", "-no-color")
    assert "The configuration is valid" in proc.stdout
    assert _tracked_infra_files() == tracked_before


def test_every_module_declares_its_providers_once_and_needs_only_aws() -> None:
    for tf_file in sorted(h.INFRA.rglob("*.tf")):
        if ".terraform" in tf_file.parts:
            continue
        text = tf_file.read_text()
        assert "hashicorp/archive" not in text, tf_file
        assert "archive_file" not in text, tf_file
    for module in (*h.MODULES, *h.INTERNAL_MODULES):
        declaring = [
            p.name
            for p in sorted((h.INFRA / "modules" / module).glob("*.tf"))
            if "required_providers" in p.read_text()
        ]
        assert declaring == ["versions.tf"], (module, declaring)


def test_terraform_validate_misspelled_argument_fails_clearly(
    tf: h.Terraform, tmp_path: Path
) -> None:
    # A configuration of its own (nothing under infra/ is copied or edited).
    (tmp_path / "main.tf").write_text(
        'terraform {\n  required_providers {\n    aws = {\n      source  = "hashicorp/aws"\n'
        '      version = "5.100.0"\n    }\n  }\n}\n\n'
        'resource "aws_lambda_function" "f" {\n  function_name        = "f"\n'
        '  role                 = "arn:aws:iam::123456789012:role/r"\n'
        '  filename             = "f.zip"\n  reserved_concurrency = 1\n}\n'
    )
    data = tmp_path / ".tfdata"
    tf.run(tmp_path, "init", "-no-color", "-backend=false", data_dir=data)
    proc = tf.run(tmp_path, "validate", "-no-color", data_dir=data, check=False)
    assert proc.returncode != 0
    assert "reserved_concurrency" in proc.stderr
