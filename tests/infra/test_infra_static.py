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


@pytest.mark.parametrize("module", (*h.MODULES, *h.INTERNAL_MODULES))
def test_module_has_house_file_set_and_typed_described_variables(module: str) -> None:
    mdir = MODULES / module
    house = ["main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"]
    if module in h.MODULES:
        house += ["lambda.tf", "event_bridge.tf"]
    for name in house:
        assert (mdir / name).exists(), f"{module}/{name} missing"
    assert not (mdir / "package.tf").exists(), "packaging is `algostack lambdas package`"
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
        '${merge(local.common_tags,{Name=local.instance_name,Role="ingest",Broker=local.broker_tag})}'
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


def _lambda_call(module: str) -> dict[str, Any]:
    """The ``module "lambda"`` block (the controller_lambda call) of a controller module."""
    calls = _blocks(MODULES / module / "lambda.tf", "module")
    assert set(calls) == {"lambda"}, module
    call = calls["lambda"]
    assert call["source"] == "../controller_lambda"
    return call


@pytest.mark.parametrize("module", h.MODULES)
def test_iam_role_names_follow_component_resource_environment(module: str) -> None:
    roles = {k: v for k, v in _module_resources(module).items() if k.startswith("aws_iam_role.")}
    for key, body in roles.items():
        name = body["name"]
        if key == "aws_iam_role.trader":  # one role per trading host
            trader_locals = h.load_hcl(MODULES / module / "main.tf")["locals"][0]
            fmt = re.sub(r"\s", "", trader_locals["trader_role_names"])
            assert '=>format("trading_server_instance_%s_%s_%s",' in fmt
            assert fmt.endswith(",var.environment)}}")
            continue
        assert re.fullmatch(rf"{module}_[a-z_]+_\$\{{var\.environment\}}", name), key
    # The controller's role: <component>_lambda_<environment>, made by controller_lambda.
    assert _lambda_call(module)["component"] == module
    sub = h.load_hcl(MODULES / "controller_lambda" / "main.tf")["locals"][0]
    assert sub["role_name"] == "${var.component}_lambda_${var.environment}"


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
    ("module", "handler", "timeout", "action"),
    [
        ("alpaca_websocket", "algostack.control.handlers.ingest_handler", 900, "start"),
        ("trading_server", "algostack.control.handlers.trading_handler", 900, "start"),
        ("trading_server_shutdown", "algostack.control.handlers.shutdown_handler", 300, "stop"),
    ],
)
def test_lambda_contract_handler_timeout_and_least_privilege(
    module: str, handler: str, timeout: int, action: str
) -> None:
    call = _lambda_call(module)
    assert call["handler"] == handler
    assert call["timeout"] == timeout
    # Only the shutdown controller stops instances; the other two only start them.
    assert call["instance_action"] == action
    assert call["function_name"] == "${local.lambda_name}"
    assert call["settings"] == "${var.lambda}"
    mod_name, func = handler.rsplit(".", 1)
    assert callable(getattr(importlib.import_module(mod_name), func, None)), handler
    from algostack.control.package import MODULES as PACKAGED

    assert module in PACKAGED
    assert PACKAGED[module] == (MODULES / module / "run.sh").exists()


def test_controller_lambda_defaults_runtime_concurrency_tracing_and_package_check() -> None:
    sub = MODULES / "controller_lambda"
    fn = _module_resources("controller_lambda")["aws_lambda_function.this"]
    assert fn["reserved_concurrent_executions"] == "${var.settings.reserved_concurrent_executions}"
    assert fn["runtime"] == "${var.settings.runtime}"
    assert fn["tracing_config"][0]["mode"] == "Active"
    assert "dead_letter_config" in str(fn.get("dynamic", ""))
    settings = _blocks(sub / "variables.tf", "variable")["settings"]["type"]
    compact = re.sub(r"\s", "", settings)
    # Python 3.12+ runtimes run on Amazon Linux 2023 (3.11 is on Amazon Linux 2, past EOL);
    # no reserved concurrency by default (a quota of 10 refuses any reservation).
    assert 'runtime=optional(string,"python3.12")' in compact
    assert "reserved_concurrent_executions=optional(number)," in compact
    pre = fn["lifecycle"][0]["precondition"][0]
    assert pre["condition"] == "${local.package_exists}"
    assert "make lambdas" in pre["error_message"]
    locals_ = h.load_hcl(sub / "main.tf")["locals"][0]
    assert locals_["package_exists"] == "${fileexists(local.package_path)}"
    # filebase64sha256 of a missing file must not fail before the precondition can speak.
    assert locals_["package_hash"] == "${try(filebase64sha256(local.package_path), null)}"
    assert locals_["package_path"] == "${local.build_dir}/${var.component}.zip"


def test_hardening_imdsv2_encryption_and_no_world_dashboard() -> None:
    for module, name in (("alpaca_websocket", "ingest"), ("trading_server", "trader")):
        inst = _module_resources(module)[f"aws_instance.{name}"]
        assert inst["metadata_options"][0]["http_tokens"] == "required"
        root = inst["root_block_device"][0]
        assert root["encrypted"] is True
        assert root["volume_size"]
        assert "key_name" not in inst  # no SSH key: SSM only
        # A newer AMI never replaces a host; setting ami_id does (terraform_data.ami).
        lifecycle = inst["lifecycle"][0]
        assert lifecycle["ignore_changes"] == ["ami"]
        assert lifecycle["replace_triggered_by"] == ["${terraform_data.ami}"]
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
    assert values["broker"] == "alpaca"
    assert values["alpaca_live"] is False
    assert values["git_repository"] == (
        "ssh://git@ssh.github.com:443/kayvonavishan/algo-modeling-v2.git"
    )
    assert values["lambda_reserved_concurrent_executions"] is None
    assert values["lambda_build_dir"] is None
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


def test_ingest_module_broker_defaults_to_alpaca_paper_and_tags_it() -> None:
    ws_vars = _blocks(MODULES / "alpaca_websocket" / "variables.tf", "variable")
    assert ws_vars["broker"]["default"] == "alpaca"
    assert ws_vars["alpaca_live"]["default"] is False
    ingest = _module_resources("alpaca_websocket")["aws_instance.ingest"]
    assert "broker=${var.broker}" in ingest["user_data"]
    assert "alpaca_live=${var.alpaca_live}" in ingest["user_data"]
    assert "Broker=local.broker_tag" in re.sub(r"\s", "", ingest["tags"])
    locals_ = h.load_hcl(MODULES / "alpaca_websocket" / "main.tf")["locals"][0]
    assert locals_["broker_tag"] == (
        '${var.broker == "sim" ? "sim" : (var.alpaca_live ? "alpaca-live" : "alpaca")}'
    )


def test_traders_have_no_broker_and_no_alpaca_secret() -> None:
    """Orders go through the gateway on the ingest host: a trading host is told nothing about
    the broker and its role cannot read the Alpaca keys."""
    ts_vars = _blocks(MODULES / "trading_server" / "variables.tf", "variable")
    assert not {"broker", "alpaca_live", "alpaca_secret_name"} & set(ts_vars)
    trader = _module_resources("trading_server")["aws_instance.trader"]
    for key in ("alpaca_secret=", "broker=", "alpaca_live="):
        assert key not in trader["user_data"], key
    assert "Broker" not in trader["tags"]
    iam = (MODULES / "trading_server" / "iam.tf").read_text()
    assert "alpaca_secret" not in iam


def test_ingest_user_data_writes_the_nats_users_and_the_dashboard_contract() -> None:
    ingest = _module_resources("alpaca_websocket")["aws_instance.ingest"]
    for line in (
        "nats_secret=${local.nats_secret_names.ingest}",
        "nats_secret_ingest=${local.nats_secret_names.ingest}",
        "nats_secret_trader=${local.nats_secret_names.trader}",
        "nats_secret_dashboard=${local.nats_secret_names.dashboard}",
        "nats_secret_gateway=${local.nats_secret_names.gateway}",
        "${local.dashboard_config}",
    ):
        assert line in ingest["user_data"], line
    locals_ = h.load_hcl(MODULES / "alpaca_websocket" / "main.tf")["locals"][0]
    assert locals_["remote_dashboard"] == "${length(var.dashboard_ingress_cidrs) > 0}"
    assert locals_["dashboard_secret_name"] == "algostack/${var.environment}/dashboard"
    config = re.sub(r"\s", "", locals_["dashboard_config"])
    assert config == (
        '${(local.remote_dashboard?"dashboard_host=0.0.0.0\\ndashboard_secret='
        '${local.dashboard_secret_name}":"dashboard_host=127.0.0.1")}'
    )


def test_model_discovery_lists_level_by_level_so_live_outputs_cannot_crowd_it_out() -> None:
    data = {}
    for block in h.load_hcl(MODULES / "trading_server" / "main.tf").get("data", []):
        for rtype, named in block.items():
            for name, body in named.items():
                data[f"{rtype}.{name}"] = body
    listings = {k: v for k, v in data.items() if k.startswith("aws_s3_objects.")}
    assert set(listings) == {
        "aws_s3_objects.model_root",
        "aws_s3_objects.model_types",
        "aws_s3_objects.model_symbols",
    }
    for body in listings.values():
        assert body["delimiter"] == "/"
    assert listings["aws_s3_objects.model_root"]["prefix"] == "models/"


def _readme_table(readme: str, heading: str) -> set[str]:
    section = readme.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z0-9_]+)` \|", section, flags=re.MULTILINE))


@pytest.mark.parametrize("module", (*h.MODULES, *h.INTERNAL_MODULES))
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
