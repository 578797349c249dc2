"""Fixtures of the infra tests: toolchain discovery (skip with a reason when absent), the Lambda
zips built once per session by `algostack lambdas package`, one terraform init per committed
root (data dir and state in temp dirs), one moto_server per session with the dev and qa roots
applied to it concurrently (shared by the deploy and controller tests)."""

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
def lambda_zips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The controller zips, built by the project's command into a temporary directory."""
    out = tmp_path_factory.mktemp("lambda-build")
    h.build_lambdas(out)
    return out


@pytest.fixture(scope="session")
def tf(
    terraform_bin: str, tf_mirror: Path, tmp_path_factory: pytest.TempPathFactory
) -> h.Terraform:
    """Terraform configured for the offline mirror, sharing one plugin cache."""
    base = tmp_path_factory.mktemp("tfcli")
    cli = h.write_cli_config(base / "cli.tfrc", tf_mirror, base / "plugin-cache")
    return h.Terraform(terraform_bin, cli, base / "roots")


@pytest.fixture(scope="session")
def init_root(tf: h.Terraform) -> Callable[[str], h.TfRoot]:
    """Return a function that runs ``terraform init`` once per committed root."""

    def _init(rel: str) -> h.TfRoot:
        return tf.root(rel).init()

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
    init_root: Callable[[str], h.TfRoot], moto_server: h.MotoServer, lambda_zips: Path
) -> Iterator[dict[str, em.Deployed]]:
    """The dev and qa roots applied at the same time to one moto_server; destroyed at the end
    (a failed destroy fails the session's teardown)."""
    with em.deploy_concurrently(("dev", "qa"), init_root, moto_server, lambda_zips) as deps:
        yield deps


@pytest.fixture(scope="session")
def qa(deployments: dict[str, em.Deployed]) -> em.Deployed:
    """The applied qa root."""
    return deployments["qa"]


@pytest.fixture(scope="session")
def dev(deployments: dict[str, em.Deployed]) -> em.Deployed:
    """The applied dev root."""
    return deployments["dev"]
