"""Fixtures of the infra tests: toolchain discovery (skip with a reason when absent), one staged
copy of infra/ per session, one terraform init per root, one moto_server per session with the
dev and qa roots applied to it concurrently (shared by the deploy and controller tests)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import infra_emulated as em
import infra_harness as h
import pytest


@pytest.fixture(scope="session")
def terraform_bin() -> str:
    """The terraform binary, or skip."""
    binary = h.find_terraform()
    if binary is None:
        pytest.skip("terraform is not on the PATH (install Terraform >= 1.11)")
    return binary


@pytest.fixture(scope="session")
def tf_mirror() -> Path:
    """A provider mirror holding hashicorp/aws, or skip."""
    mirror = h.find_mirror()
    if mirror is None:
        pytest.skip(
            "no filesystem mirror of hashicorp/aws found (set ALGOSTACK_TF_MIRROR; looked in "
            + ", ".join(h.MIRROR_CANDIDATES)
            + ") and these tests never download providers"
        )
    return mirror


@pytest.fixture(scope="session")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """infra/ copied to a temporary directory with Python-built Lambda zips."""
    return h.stage_infra(tmp_path_factory.mktemp("stage"))


@pytest.fixture(scope="session")
def tf(
    terraform_bin: str, tf_mirror: Path, tmp_path_factory: pytest.TempPathFactory
) -> h.Terraform:
    """Terraform configured for the offline mirror, sharing one plugin cache."""
    base = tmp_path_factory.mktemp("tfcli")
    cli = h.write_cli_config(base / "cli.tfrc", tf_mirror, base / "plugin-cache")
    return h.Terraform(terraform_bin, cli)


@pytest.fixture(scope="session")
def init_root(tf: h.Terraform, staged: Path) -> Callable[[str], Path]:
    """Return a function that runs ``terraform init`` once per staged directory."""
    done: set[Path] = set()

    def _init(rel: str) -> Path:
        path = staged / rel
        if path not in done:
            tf.run(path, "init", "-no-color", "-backend=false")
            done.add(path)
        return path

    return _init


@pytest.fixture(scope="session")
def moto_server() -> Iterator[h.MotoServer]:
    """One moto_server per session, stopped at the end."""
    script = h.find_moto_server()
    if script is None:
        pytest.skip("moto_server is not installed in this virtualenv (moto[server])")
    server = h.MotoServer(script)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def deployments(
    tf: h.Terraform, init_root: Callable[[str], Path], moto_server: h.MotoServer
) -> Iterator[dict[str, em.Deployed]]:
    """The dev and qa roots applied at the same time to one moto_server; destroyed at the end
    (a failed destroy fails the session's teardown)."""
    with em.deploy_concurrently(("dev", "qa"), tf, init_root, moto_server) as deps:
        yield deps


@pytest.fixture(scope="session")
def qa(deployments: dict[str, em.Deployed]) -> em.Deployed:
    """The applied qa root."""
    return deployments["qa"]


@pytest.fixture(scope="session")
def dev(deployments: dict[str, em.Deployed]) -> em.Deployed:
    """The applied dev root."""
    return deployments["dev"]
