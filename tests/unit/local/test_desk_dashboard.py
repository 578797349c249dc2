"""``algostack run --dashboard``: what the dashboard child is told (no processes started)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from typer.testing import CliRunner

from algostack.cli import app
from algostack.core.naming import ModelSpec
from algostack.local.desk import LocalDesk
from algostack.local.session import RunConfig, RunPaths


def make_desk(home: Path, **kw: object) -> LocalDesk:
    cfg = RunConfig(paths=RunPaths(home, "run1", **kw), day=date(2024, 3, 15),  # type: ignore[arg-type]
                    dashboard=True, dashboard_port=18501, env="local")  # fmt: skip
    desk = LocalDesk(cfg, [ModelSpec("sma", "AAPL", "model_4", 4)], base_env={"PATH": "/bin"})
    desk.nats_url = "nats://127.0.0.1:4999"
    return desk


def test_dashboard_spec_reads_run_store_journals_and_nats_without_keys(tmp_path: Path) -> None:
    desk = make_desk(tmp_path)
    env = desk._child_env("run-user", "run-pass")
    env.update({"APCA_API_KEY_ID": "PKLEAK", "APCA_API_SECRET_KEY": "leak"})
    spec = desk.dashboard_spec(env)
    argv = spec.argv[spec.argv.index("dashboard") + 1 :]
    opts = dict(zip(argv[::2], argv[1::2], strict=True))
    assert opts == {
        "--port": "18501",
        "--nats-url": "nats://127.0.0.1:4999",
        "--bucket": str(tmp_path),  # the model store: its models/ lists every model
        "--journals": str(tmp_path / "journals" / "run1"),
        "--env": "local",
    }
    assert spec.env["ALGOSTACK_NATS_USER"] == "run-user"
    assert spec.env["ALGOSTACK_NATS_PASSWORD"] == "run-pass"
    assert "APCA_API_KEY_ID" not in spec.env and "APCA_API_SECRET_KEY" not in spec.env
    assert spec.env["ALGOSTACK_DASHBOARD_JOURNAL_EVERY_S"] == "2"
    assert "run-pass" not in " ".join(spec.argv)


def test_dashboard_spec_own_model_store_is_the_dashboards_model_list(tmp_path: Path) -> None:
    store = tmp_path / "store"
    spec = make_desk(tmp_path / "home", store_dir=store).dashboard_spec({})
    assert spec.argv[spec.argv.index("--bucket") + 1] == str(store)


def test_dashboard_spec_argv_is_accepted_by_the_cli(tmp_path: Path) -> None:
    spec = make_desk(tmp_path).dashboard_spec({})
    args = spec.argv[spec.argv.index("dashboard") :]
    # the real command line with a host it must refuse: parsed, then a one-line error
    result = CliRunner().invoke(app, [*args, "--host", "0.0.0.0"])
    assert result.exit_code == 2, result.output
    assert "refusing to serve the dashboard on 0.0.0.0" in result.output
