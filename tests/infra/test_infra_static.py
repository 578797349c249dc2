"""Static contracts of infra/: formatting, the spec's names, tags, schedules and matrix,
the key grammar shared with Python, the Lambda file set, READMEs, checkov and shellcheck."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import infra_harness as h
import pytest

from algostack.core.naming import MODEL_KEY_PATTERN

MODULES = h.INFRA / "modules"
ENVS = h.INFRA / "environments"


def _blocks(path: Path, kind: str) -> dict[str, dict[str, Any]]:
    """Merge every ``kind`` block of a file: resource -> {"type.name": body}."""
    out: dict[str, dict[str, Any]] = {}
    for block in h.load_hcl(path).get(kind, []):
        for rtype, named in block.items():
            if kind in ("resource", "data"):
                for name, body in named.items():
                    out[f"{rtype}.{name}"] = body
            else:
                out[rtype] = named
    return out


def _module_resources(module: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for tf_file in sorted((MODULES / module).glob("*.tf")):
        out.update(_blocks(tf_file, "resource"))
    return out


def test_terraform_fmt_check_recursive_is_clean(terraform_bin: str) -> None:
    proc = subprocess.run(
        [terraform_bin, "fmt", "-check", "-recursive", "-diff", str(h.INFRA)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("module", h.MODULES)
def test_module_has_house_file_set_and_typed_described_variables(module: str) -> None:
    mdir = MODULES / module
    for name in (
        "main.tf",
        "variables.tf",
        "outputs.tf",
        "versions.tf",
        "iam.tf",
        "lambda.tf",
        "event_bridge.tf",
        "package.tf",
        "README.md",
    ):
        assert (mdir / name).exists(), f"{module}/{name} missing"
    for name, body in _blocks(mdir / "variables.tf", "variable").items():
        assert body.get("type"), f"{module}: variable {name} has no type"
        assert body.get("description"), f"{module}: variable {name} has no description"
    for name, body in _blocks(mdir / "outputs.tf", "output").items():
        assert body.get("description"), f"{module}: output {name} has no description"


def test_trading_key_pattern_equals_python_model_key_pattern() -> None:
    locals_ = h.load_hcl(MODULES / "trading_server" / "main.tf")["locals"][0]
    assert locals_["model_key_pattern"] == MODEL_KEY_PATTERN


def test_names_follow_the_spec_naming_reference() -> None:
    aw = _module_resources("alpaca_websocket")
    assert re.sub(r"\s", "", aw["aws_instance.ingest"]["tags"]) == (
        '${merge(local.common_tags,{Name=local.instance_name,Role="ingest"})}'
    )
    main_locals = h.load_hcl(MODULES / "alpaca_websocket" / "main.tf")["locals"][0]
    assert main_locals["instance_name"] == "alpaca-websocket-ingest-${var.environment}"
    assert main_locals["lambda_name"] == "AlpacaWebsocketLambda_${var.environment}"
    assert aw["aws_scheduler_schedule.daily"]["name"] == (
        "alpaca-websocket-lambda-daily-9am-est-${var.environment}"
    )
    ts_locals = h.load_hcl(MODULES / "trading_server" / "main.tf")["locals"][0]
    assert ts_locals["lambda_name"] == "TradingServerLambda_${var.environment}"
    trader_tags = re.sub(
        r"\s", "", _module_resources("trading_server")["aws_instance.trader"]["tags"]
    )
    assert (
        "trading-server-${var.environment}-${each.value.symbol}-${each.value.model_type}"
        "-${each.value.model_number}" in trader_tags
    )
    for tag in ("Role=", "ModelPrefix=", "ModelType=", "Symbol=", "ModelId=", "ModelNumber="):
        assert tag in trader_tags, tag
    sd_locals = h.load_hcl(MODULES / "trading_server_shutdown" / "main.tf")["locals"][0]
    assert sd_locals["lambda_name"] == "TradingServerShutdownLambda_${var.environment}"
    sd = _module_resources("trading_server_shutdown")
    assert sd["aws_cloudwatch_event_rule.shutdown"]["name"] == (
        "trading-server-shutdown-schedule-${var.environment}"
    )


@pytest.mark.parametrize("module", h.MODULES)
def test_iam_role_names_follow_component_resource_environment(module: str) -> None:
    roles = {k: v for k, v in _module_resources(module).items() if k.startswith("aws_iam_role.")}
    assert roles
    for key, body in roles.items():
        assert re.fullmatch(rf"{module}_[a-z_]+_\$\{{var\.environment\}}", body["name"]), key


def test_schedules_have_the_spec_defaults_and_time_zones() -> None:
    aw_vars = _blocks(MODULES / "alpaca_websocket" / "variables.tf", "variable")
    assert aw_vars["schedule_expression"]["default"] == "cron(30 8 ? * MON-FRI *)"
    assert aw_vars["schedule_timezone"]["default"] == "America/New_York"
    assert aw_vars["enable_eventbridge"]["default"] is False
    sd_vars = _blocks(MODULES / "trading_server_shutdown" / "variables.tf", "variable")
    assert sd_vars["schedule_expression"]["default"] == "cron(5 21 * * ? *)"
    assert sd_vars["schedule_mode"]["default"] == "rule"
    assert sd_vars["schedule_timezone"]["default"] == "America/New_York"
    schedule = _module_resources("trading_server_shutdown")["aws_scheduler_schedule.shutdown"]
    assert schedule["schedule_expression_timezone"] == "${var.schedule_timezone}"


@pytest.mark.parametrize(
    ("module", "resource", "handler", "timeout"),
    [
        ("alpaca_websocket", "controller", "algostack.control.handlers.ingest_handler", 900),
        ("trading_server", "controller", "algostack.control.handlers.trading_handler", 900),
        ("trading_server_shutdown", "shutdown", "algostack.control.handlers.shutdown_handler", 300),
    ],
)
def test_lambda_contract_handler_timeout_concurrency(
    module: str, resource: str, handler: str, timeout: int
) -> None:
    fn = _module_resources(module)[f"aws_lambda_function.{resource}"]
    assert fn["handler"] == handler
    assert fn["timeout"] == timeout
    assert fn["reserved_concurrent_executions"] == 1
    assert fn["tracing_config"][0]["mode"] == "Active"
    assert "dead_letter_config" in str(fn.get("dynamic", ""))
    runtime = _blocks(MODULES / module / "variables.tf", "variable")["lambda_runtime"]
    assert runtime["default"] in ("python3.11", "python3.12")
    mod_name, func = handler.rsplit(".", 1)
    assert callable(getattr(importlib.import_module(mod_name), func, None)), handler


def test_hardening_imdsv2_encryption_and_no_world_dashboard() -> None:
    for module, name in (("alpaca_websocket", "ingest"), ("trading_server", "trader")):
        inst = _module_resources(module)[f"aws_instance.{name}"]
        assert inst["metadata_options"][0]["http_tokens"] == "required"
        root = inst["root_block_device"][0]
        assert root["encrypted"] is True
        assert root["volume_size"]
        assert "key_name" not in inst  # no SSH key: SSM only
    dash = _blocks(MODULES / "alpaca_websocket" / "variables.tf", "variable")
    assert dash["dashboard_ingress_cidrs"]["default"] == []
    nats = _module_resources("alpaca_websocket")["aws_security_group_rule.nats"]
    assert nats["from_port"] == 4222
    assert "cidr_blocks" not in nats
    assert nats["source_security_group_id"] == "${aws_security_group.nats_clients.id}"


def _env_values(env: str) -> dict[str, Any]:
    tfvars = h.load_hcl(ENVS / env / "terraform.tfvars")
    defaults = {
        k: v.get("default") for k, v in _blocks(ENVS / env / "variables.tf", "variable").items()
    }
    return {**defaults, **tfvars}


@pytest.mark.parametrize(
    ("env", "eventbridge", "shutdown", "bucket", "branch"),
    [
        ("dev", False, False, "algo-model-deploy-dev", "feature/dev"),
        ("qa", True, True, "algo-model-deploy", "main"),
        ("prod", True, True, "algo-model-deploy-prod", "live"),
    ],
)
def test_environment_matrix_matches_the_spec(
    env: str, eventbridge: bool, shutdown: bool, bucket: str, branch: str
) -> None:
    values = _env_values(env)
    assert values["environment"] == env
    assert values["enable_eventbridge"] is eventbridge
    assert values["enable_shutdown"] is shutdown
    assert values["bucket_name"] == bucket
    assert values["git_branch"] == branch
    assert values["aws_endpoint_url"] is None
    if env == "dev":
        assert values["ingest_instance_type"] == values["trader_instance_type"] == "t2.small"
    assert (ENVS / env / "backend.tf.example").exists()
    pins = h.load_hcl(ENVS / env / "versions.tf")["terraform"][0]["required_providers"][0]
    assert pins["aws"]["version"] == "5.100.0"


def test_environment_roots_differ_only_in_values() -> None:
    for name in ("main.tf", "providers.tf", "outputs.tf", "versions.tf"):
        texts = {(ENVS / env / name).read_text() for env in h.ENVIRONMENTS}
        assert len(texts) == 1, name
    shapes = {
        json.dumps(
            {k: sorted(v) for k, v in _blocks(ENVS / env / "variables.tf", "variable").items()},
            sort_keys=True,
        )
        for env in h.ENVIRONMENTS
    }
    assert len(shapes) == 1


@pytest.mark.parametrize("module", h.MODULES)
def test_package_tf_file_set_equals_python_zip_file_set(module: str) -> None:
    """The staged zip (Python) and archive_file (Terraform) hold the same files."""
    text = (MODULES / module / "package.tf").read_text()
    core, control_glob = h.package_spec(MODULES / module)
    assert core == [
        "algostack/__init__.py",
        "algostack/errors.py",
        "algostack/core/__init__.py",
        "algostack/core/naming.py",
        "algostack/core/sessions.py",
        "algostack/core/calendar_data.py",
        "algostack/core/backoff.py",
    ]
    assert control_glob == "algostack/control/*.py"
    assert "fileset(local.src_root, local.lambda_control_glob)" in text
    assert 'fileexists("${path.module}/run.sh") ? { "run.sh" = "${path.module}/run.sh" }' in text
    files = h.lambda_file_set(MODULES / module)
    expected = set(core) | {
        p.relative_to(h.SRC).as_posix() for p in (h.SRC / "algostack" / "control").glob("*.py")
    }
    if (MODULES / module / "run.sh").exists():
        expected.add("run.sh")
    assert set(files) == expected
    assert all(path.is_file() for path in files.values())


def test_python_zip_is_deterministic_and_holds_exactly_the_file_set(tmp_path: Path) -> None:
    import zipfile

    files = h.lambda_file_set(MODULES / "trading_server")
    first = h.build_zip(files, tmp_path / "a.zip")
    second = h.build_zip(files, tmp_path / "b.zip")
    assert first == second
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        assert sorted(zf.namelist()) == sorted(files)
        assert zf.read("run.sh") == (MODULES / "trading_server" / "run.sh").read_bytes()


def _readme_table(readme: str, heading: str) -> set[str]:
    section = readme.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z0-9_]+)` \|", section, flags=re.MULTILINE))


@pytest.mark.parametrize("module", h.MODULES)
def test_module_readme_tables_match_variables_and_outputs(module: str) -> None:
    mdir = MODULES / module
    readme = (mdir / "README.md").read_text()
    assert _readme_table(readme, "Inputs") == set(_blocks(mdir / "variables.tf", "variable"))
    assert _readme_table(readme, "Outputs") == set(_blocks(mdir / "outputs.tf", "output"))


def test_shellcheck_run_scripts_are_clean() -> None:
    binary = h.find_shellcheck()
    if binary is None:
        pytest.skip("shellcheck is not installed (make tools installs it)")
    scripts = sorted(MODULES.glob("*/run.sh"))
    assert len(scripts) == 2
    proc = subprocess.run([binary, *map(str, scripts)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_checkov_reports_no_failed_checks_and_justified_skips() -> None:
    checkov = h.find_checkov()
    if checkov is None:
        pytest.skip("checkov is not installed in .venv-checkov (make tools installs it)")
    proc = subprocess.run(
        [
            str(checkov),
            "-d",
            str(h.INFRA),
            "--framework",
            "terraform",
            "--skip-download",
            "--external-checks-dir",
            str(h.INFRA / "checkov"),
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=170,
    )
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [c for r in reports for c in r["results"]["failed_checks"]]
    assert failed == [], [(c["check_id"], c["resource"]) for c in failed]
    for r in reports:
        for skipped in r["results"]["skipped_checks"]:
            assert len(skipped["check_result"].get("suppress_comment", "")) > 20, skipped[
                "check_id"
            ]
    passed_ids = {c["check_id"] for r in reports for c in r["results"]["passed_checks"]}
    assert "CKV_ALGO_1" in passed_ids


def test_custom_check_fails_world_open_ingress(tmp_path: Path) -> None:
    checkov = h.find_checkov()
    if checkov is None:
        pytest.skip("checkov is not installed in .venv-checkov (make tools installs it)")
    (tmp_path / "main.tf").write_text(
        'resource "aws_security_group_rule" "nats" {\n'
        '  type              = "ingress"\n  security_group_id = "sg-1"\n'
        '  description       = "NATS"\n  protocol          = "tcp"\n'
        "  from_port         = 4222\n  to_port           = 4222\n"
        '  cidr_blocks       = ["0.0.0.0/0"]\n}\n'
    )
    proc = subprocess.run(
        [
            str(checkov),
            "-d",
            str(tmp_path),
            "--framework",
            "terraform",
            "--skip-download",
            "--external-checks-dir",
            str(h.INFRA / "checkov"),
            "--check",
            "CKV_ALGO_1",
            "--output",
            "json",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    report = json.loads(proc.stdout)
    failed = [c["check_id"] for c in report["results"]["failed_checks"]]
    assert failed == ["CKV_ALGO_1"]
