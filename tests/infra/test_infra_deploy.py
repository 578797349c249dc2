"""Emulated deploy: the dev and qa roots applied concurrently to one moto_server (conftest's
``deployments``); what Terraform built is checked through boto3 against the spec and the
environment matrix; re-plan shows no changes; a new model key plans exactly one instance;
destroy leaves nothing (the fixture's teardown). The controllers run against the same
emulator in test_infra_deploy_controllers.py."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from infra_emulated import BUCKETS, SEED_KEYS, Deployed, live_instances, user_data

from algostack.core.naming import group_models

# The two concurrent applies happen in the setup of the first test that needs them.
pytestmark = pytest.mark.timeout(900)


# The environment matrix (docs/operations.md): what each root must have built.
MATRIX: dict[str, dict[str, Any]] = {
    "dev": {
        "bucket": "algo-model-deploy-dev",
        "branch": "feature/dev",
        "type": "t2.small",
        "lambdas": {"AlpacaWebsocketLambda_dev", "TradingServerLambda_dev"},
        "schedules": set(),
        "rules": set(),
        "chained": False,
    },
    "qa": {
        "bucket": "algo-model-deploy",
        "branch": "main",
        "type": "t3.small",
        "lambdas": {
            "AlpacaWebsocketLambda_qa",
            "TradingServerLambda_qa",
            "TradingServerShutdownLambda_qa",
        },
        "schedules": {"alpaca-websocket-lambda-daily-9am-est-qa"},
        "rules": {"trading-server-shutdown-schedule-qa"},
        "chained": True,
    },
}


# Terraform lists models/ level by level (delimiter "/"): keys deeper than a symbol folder, such
# as a trader's live outputs, are never listed, so they can neither be deployed nor crowd out
# artifacts. Both parsers see this list.
LISTED_KEYS = [k for k in SEED_KEYS if k.count("/") <= 3]


def test_qa_terraform_and_python_parse_the_same_keys(qa: Deployed) -> None:
    assert "models/xgb/SPY/model_7/live/2024-01-02/live_trader.log" not in LISTED_KEYS
    models, ignored = group_models(LISTED_KEYS)
    expected = {
        m.prefix: {
            "model_type": m.model_type,
            "symbol": m.symbol,
            "model_id": m.model_id,
            "model_number": m.model_number,
            "folds": len(m.folds),
        }
        for m in models
    }
    assert qa.outputs["model_info_attrs"] == expected
    assert sorted(qa.outputs["ignored_keys"]) == sorted(ignored)


@pytest.mark.parametrize("env", ["dev", "qa"])
def test_instances_tags_imdsv2_encryption_and_user_data_follow_the_matrix(
    env: str, deployments: dict[str, Deployed]
) -> None:
    dep, want = deployments[env], MATRIX[env]
    insts = live_instances(dep)
    assert set(insts) == {
        f"alpaca-websocket-ingest-{env}",
        f"trading-server-{env}-SPY-xgb-7",
        f"trading-server-{env}-QQQ-lin-12",
    }
    trader = insts[f"trading-server-{env}-SPY-xgb-7"]
    for key, value in {
        "Environment": env,
        "Project": "algostack",
        "Role": "trader",
        "ModelPrefix": "models/xgb/SPY/model_7",
        "ModelType": "xgb",
        "Symbol": "SPY",
        "ModelId": "model_7",
        "ModelNumber": "7",
    }.items():
        assert trader["TagMap"][key] == value, key
    assert "Broker" not in trader["TagMap"]  # the gateway on the ingest host has the broker
    assert insts[f"alpaca-websocket-ingest-{env}"]["TagMap"]["Role"] == "ingest"
    assert insts[f"alpaca-websocket-ingest-{env}"]["TagMap"]["Broker"] == "alpaca"
    ec2 = dep.client("ec2")
    key_id = dep.client("kms").describe_key(KeyId=f"alias/algostack-{env}")["KeyMetadata"]["KeyId"]
    for name, inst in insts.items():
        assert inst["MetadataOptions"]["HttpTokens"] == "required", name
        assert inst["InstanceType"] == want["type"], name
        assert "KeyName" not in inst
        vol_id = inst["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
        vol = ec2.describe_volumes(VolumeIds=[vol_id])["Volumes"][0]
        assert vol["Encrypted"] is True
        assert vol["KmsKeyId"].endswith(key_id), name
        config = user_data(dep, inst["InstanceId"])
        assert config["environment"] == env, name
        assert config["bucket"] == want["bucket"], name
        assert config["git_branch"] == want["branch"], name
        assert config["git_repository"] == (
            "ssh://git@ssh.github.com:443/kayvonavishan/algo-modeling-v2.git"
        )
    trader_config = user_data(dep, trader["InstanceId"])
    assert trader_config["model_prefix"] == "models/xgb/SPY/model_7"
    assert trader_config["model_number"] == "7"
    assert trader_config["nats_secret"] == f"algostack/{env}/nats/trader"
    assert not {"broker", "alpaca_live", "alpaca_secret"} & set(trader_config)
    ingest_config = user_data(dep, insts[f"alpaca-websocket-ingest-{env}"]["InstanceId"])
    for role in ("ingest", "trader", "dashboard", "gateway"):
        assert ingest_config[f"nats_secret_{role}"] == f"algostack/{env}/nats/{role}"
    assert ingest_config["broker"] == "alpaca"
    assert ingest_config["alpaca_live"] == "false"
    assert ingest_config["alpaca_secret"] == f"alpaca/{env}"
    assert ingest_config["dashboard_host"] == "127.0.0.1"  # no dashboard_ingress_cidrs
    assert "dashboard_secret" not in ingest_config


@pytest.mark.parametrize("env", ["dev", "qa"])
def test_schedules_shutdown_and_chaining_follow_the_matrix(
    env: str, deployments: dict[str, Deployed]
) -> None:
    dep, want = deployments[env], MATRIX[env]
    lam = dep.client("lambda")
    functions = {f["FunctionName"] for f in lam.list_functions()["Functions"]}
    assert {f for f in functions if f.endswith(f"_{env}")} == want["lambdas"]
    # terraform output -json omits null outputs.
    assert dep.outputs.get("shutdown_lambda_name") == (
        f"TradingServerShutdownLambda_{env}" if want["chained"] else None
    )
    schedules = {s["Name"] for s in dep.client("scheduler").list_schedules()["Schedules"]}
    assert {s for s in schedules if s.endswith(f"-{env}")} == want["schedules"]
    rules = {r["Name"] for r in dep.client("events").list_rules()["Rules"]}
    assert {r for r in rules if r.endswith(f"-{env}")} == want["rules"]
    chain = lam.list_function_event_invoke_configs(FunctionName=f"AlpacaWebsocketLambda_{env}")[
        "FunctionEventInvokeConfigs"
    ]
    ingest_role = dep.client("iam").list_role_policies(RoleName=f"alpaca_websocket_lambda_{env}")
    if want["chained"]:
        assert len(chain) == 1
        on_success = chain[0]["DestinationConfig"]["OnSuccess"]["Destination"]
        assert on_success.endswith(f":function:TradingServerLambda_{env}")
        assert f"trading_server_chain_{env}" in ingest_role["PolicyNames"]
    else:
        assert chain == []
        assert f"trading_server_chain_{env}" not in ingest_role["PolicyNames"]
    for name in want["lambdas"]:
        variables = lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
        assert variables["ALGOSTACK_ENV"] == env, name
        assert variables["ALGOSTACK_BUCKET"] == want["bucket"], name


def test_qa_lambdas_chain_and_schedules(qa: Deployed) -> None:
    lam = qa.client("lambda")
    handlers = {
        "AlpacaWebsocketLambda_qa": ("algostack.control.handlers.ingest_handler", 900),
        "TradingServerLambda_qa": ("algostack.control.handlers.trading_handler", 900),
        "TradingServerShutdownLambda_qa": ("algostack.control.handlers.shutdown_handler", 300),
    }
    for name, (handler, timeout) in handlers.items():
        conf = lam.get_function_configuration(FunctionName=name)
        assert conf["Handler"] == handler
        assert conf["Timeout"] == timeout
        assert conf["Environment"]["Variables"]["ALGOSTACK_ENV"] == "qa"
        # No reservation by default: accounts with a concurrency quota of 10 refuse any.
        reserved = lam.get_function_concurrency(FunctionName=name)
        assert reserved.get("ReservedConcurrentExecutions") is None, name
        assert conf["Runtime"] == "python3.12"
    chain = lam.get_function_event_invoke_config(FunctionName="AlpacaWebsocketLambda_qa")
    dest = chain["DestinationConfig"]
    assert dest["OnSuccess"]["Destination"].endswith(":function:TradingServerLambda_qa")
    assert dest["OnFailure"]["Destination"].endswith(":alpaca-websocket-lambda-dlq-qa")
    trading_env = lam.get_function_configuration(FunctionName="TradingServerLambda_qa")[
        "Environment"
    ]["Variables"]
    assert trading_env["ALGOSTACK_TRADER_NAME_PATTERN"] == "trading-server-qa-*"
    assert trading_env["ALGOSTACK_NATS_ADDRESS"] == "private"
    sched = qa.client("scheduler").get_schedule(Name="alpaca-websocket-lambda-daily-9am-est-qa")
    assert sched["ScheduleExpression"] == "cron(30 8 ? * MON-FRI *)"
    assert sched["ScheduleExpressionTimezone"] == "America/New_York"
    assert sched["Target"]["Arn"].endswith(":function:AlpacaWebsocketLambda_qa")
    rule = qa.client("events").describe_rule(Name="trading-server-shutdown-schedule-qa")
    assert rule["ScheduleExpression"] == "cron(5 21 * * ? *)"
    targets = qa.client("events").list_targets_by_rule(Rule="trading-server-shutdown-schedule-qa")[
        "Targets"
    ]
    assert [t["Arn"].rsplit(":", 1)[1] for t in targets] == ["TradingServerShutdownLambda_qa"]


def _inline_policy(dep: Deployed, role: str) -> dict[str, Any]:
    doc = dep.client("iam").get_role_policy(RoleName=role, PolicyName=role)["PolicyDocument"]
    return {s["Sid"]: s for s in doc["Statement"]}


def test_qa_controller_policies_are_scoped_and_only_shutdown_stops(qa: Deployed) -> None:
    for component in ("alpaca_websocket", "trading_server"):
        stmts = _inline_policy(qa, f"{component}_lambda_qa")
        start = stmts["StartOwnInstances"]
        assert start["Action"] == "ec2:StartInstances"
        assert start["Condition"]["StringEquals"]["aws:ResourceTag/Environment"] == "qa"
        assert start["Condition"]["StringEquals"]["aws:ResourceTag/Project"] == "algostack"
        assert (
            stmts["GrantForEncryptedVolumes"]["Condition"]["Bool"]["kms:GrantIsForAWSResource"]
            == "true"
        )
        assert stmts["RunRecords"]["Resource"].endswith(":parameter/algostack/qa/*")
        assert "ec2:StopInstances" not in json.dumps(stmts), component
        wildcard = [sid for sid, s in stmts.items() if s["Resource"] == "*"]
        assert sorted(wildcard) == ["Describe", "ReadCommands", "Tracing"]
    shutdown = json.dumps(_inline_policy(qa, "trading_server_shutdown_lambda_qa"))
    assert "ec2:StartInstances" not in shutdown
    assert "kms:CreateGrant" not in shutdown
    assert "ec2:StopInstances" in shutdown


def _profile_role(dep: Deployed, instance: dict[str, Any]) -> str:
    profile = instance["IamInstanceProfile"]["Arn"].rsplit("/", 1)[1]
    roles = dep.client("iam").get_instance_profile(InstanceProfileName=profile)
    return str(roles["InstanceProfile"]["Roles"][0]["RoleName"])


def test_qa_each_trader_has_its_own_role_writing_only_its_live_prefix(qa: Deployed) -> None:
    iam = qa.client("iam")
    insts = live_instances(qa)
    bucket = "arn:aws:s3:::" + BUCKETS["qa"]
    seen = set()
    for prefix, info in qa.outputs["instance_info"].items():
        role = _profile_role(qa, insts[info["name"]])
        assert role == info["role"]
        assert role.startswith("trading_server_instance_") and role.endswith("_qa")
        assert len(role) <= 64
        seen.add(role)
        stmts = _inline_policy(qa, role)
        assert stmts["WriteOwnLiveOutputs"]["Resource"] == f"{bucket}/{prefix}/live/*"
        assert stmts["WriteOwnLiveOutputs"]["Action"] == "s3:PutObject"
        puts = [s for s in stmts.values() if "s3:PutObject" in json.dumps(s["Action"])]
        assert [s["Sid"] for s in puts] == ["WriteOwnLiveOutputs"]
        assert sorted(stmts["ReadOwnModel"]["Resource"]) == sorted(
            [f"{bucket}/{prefix}-outer_*", f"{bucket}/{prefix}/*"]
        )
        listing = stmts["ListOwnModel"]["Condition"]["StringLike"]["s3:prefix"]
        assert sorted(listing) == sorted([prefix, f"{prefix}-outer_*", f"{prefix}/*"])
        # the archived minute bars, read only (warm-up across sessions); nothing else of it
        assert stmts["ReadArchivedBars"]["Resource"] == f"{bucket}/market/bars/*"
        assert stmts["ReadArchivedBars"]["Action"] == "s3:GetObject"
        archived = stmts["ListArchivedBars"]["Condition"]["StringLike"]["s3:prefix"]
        assert archived in ("market/bars/*", ["market/bars/*"])
        secrets = json.dumps(stmts["ReadSecrets"]["Resource"])
        assert ":secret:github/ssh-key-" in secrets
        assert ":secret:algostack/qa/nats/trader-" in secrets
        assert "alpaca" not in secrets  # orders go through the gateway: no broker key
        for other in ("ingest", "dashboard", "gateway"):
            assert f"nats/{other}" not in secrets
        attached = iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
        assert [p["PolicyName"] for p in attached] == ["AmazonSSMManagedInstanceCore"]
    assert len(seen) == len(qa.outputs["instance_info"])
    ingest_role = _profile_role(qa, insts["alpaca-websocket-ingest-qa"])
    assert ingest_role == "alpaca_websocket_instance_qa"
    ingest_secrets = json.dumps(_inline_policy(qa, ingest_role)["ReadSecrets"]["Resource"])
    assert ":secret:alpaca/qa-" in ingest_secrets  # the gateway and the ingest hold the keys
    for role in ("ingest", "trader", "dashboard", "gateway"):
        assert f"algostack/qa/nats/{role}" in ingest_secrets
    attached = iam.list_attached_role_policies(RoleName=ingest_role)["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["AmazonSSMManagedInstanceCore"]


def test_qa_nats_secrets_one_per_role(qa: Deployed) -> None:
    sm = qa.client("secretsmanager")
    for role in ("ingest", "trader", "dashboard", "gateway"):
        secret = sm.get_secret_value(SecretId=f"algostack/qa/nats/{role}")
        value = json.loads(secret["SecretString"])
        assert value["user"] == role
        assert len(value["password"]) == 32
    names = {s["Name"] for s in sm.list_secrets()["SecretList"]}
    assert "algostack/qa/nats" not in names
    assert "algostack/qa/dashboard" not in names  # only with dashboard_ingress_cidrs


def test_replan_of_dev_and_qa_shows_no_changes(deployments: dict[str, Deployed]) -> None:
    def plan(dep: Deployed) -> subprocess.CompletedProcess[str]:
        return dep.plan()

    with ThreadPoolExecutor(max_workers=2) as pool:
        procs = dict(zip(deployments, pool.map(plan, deployments.values()), strict=True))
    for env, proc in procs.items():
        assert proc.returncode == 0, env + proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "No changes." in proc.stdout, env


def test_qa_new_model_key_plans_exactly_one_instance(qa: Deployed) -> None:
    s3 = qa.client("s3")
    key = "models/xgb/QQQ/model_9-outer_0_inner_0.onnx"
    s3.put_object(Bucket=BUCKETS["qa"], Key=key, Body=b"x")
    try:
        proc = qa.plan()
    finally:
        s3.delete_object(Bucket=BUCKETS["qa"], Key=key)
    assert proc.returncode == 2, proc.stderr[-3000:]
    for address in (
        "aws_instance.trader",
        "aws_iam_role.trader",
        "aws_iam_role_policy.trader",
        "aws_iam_role_policy_attachment.trader_ssm_core",
        "aws_iam_instance_profile.trader",
    ):
        assert f'{address}["models/xgb/QQQ/model_9"] will be created' in proc.stdout, address
    assert "Plan: 5 to add, 0 to change, 0 to destroy." in proc.stdout


def _fullest_folder(keys: list[str]) -> int:
    """Entries (keys plus subfolders) of the fullest folder a delimiter listing returns."""
    entries: dict[str, set[str]] = {}
    for key in keys:
        parts = key.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth]) + "/"
            child = "/".join(parts[: depth + 1]) + ("/" if depth + 1 < len(parts) else "")
            entries.setdefault(folder, set()).add(child)
    return max(len(v) for v in entries.values())


def test_qa_live_outputs_are_never_listed_so_they_cannot_crowd_out_models(qa: Deployed) -> None:
    s3 = qa.client("s3")
    keys = [
        f"models/xgb/SPY/model_7/live/2024-02-{d:02d}/{name}"
        for d in range(1, 29)
        for name in ("live_trader.log", "trades.csv")
    ]
    for key in keys:
        s3.put_object(Bucket=BUCKETS["qa"], Key=key, Body=b"x")
    try:
        # Every listing may hold exactly what the fullest folder holds: the live outputs would
        # crowd out artifacts at once if they counted.
        proc = qa.plan("-var", f"max_model_keys={_fullest_folder(SEED_KEYS)}", "-refresh=false")
    finally:
        s3.delete_objects(Bucket=BUCKETS["qa"], Delete={"Objects": [{"Key": k} for k in keys]})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "No changes." in proc.stdout


def test_plan_without_the_lambda_packages_names_the_file_and_the_command(
    qa: Deployed, tmp_path: Path
) -> None:
    proc = qa.root.stateful("plan", "-refresh=false", *qa.args(zips=tmp_path), check=False)
    assert proc.returncode == 1
    err = " ".join(proc.stderr.split())
    assert f"Lambda package {tmp_path}/alpaca_websocket.zip is missing" in err
    assert "make lambdas" in err


def test_qa_remote_dashboard_adds_its_secret_and_rewrites_the_ingest_user_data(
    qa: Deployed,
) -> None:
    proc = qa.plan("-refresh=false", "-var", 'dashboard_ingress_cidrs=["10.20.0.0/16"]')
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    for address in (
        "module.alpaca_websocket.aws_secretsmanager_secret.dashboard[0] will be created",
        "module.alpaca_websocket.aws_secretsmanager_secret_version.dashboard[0] will be created",
        "module.alpaca_websocket.aws_security_group_rule.dashboard[0] will be created",
        "module.alpaca_websocket.aws_instance.ingest will be updated in-place",
    ):
        assert address in out, address
    assert '"algostack/qa/dashboard"' in out
    assert "must be replaced" not in out


def test_qa_live_trading_needs_the_alpaca_broker(qa: Deployed) -> None:
    proc = qa.plan("-refresh=false", "-var", "broker=sim", "-var", "alpaca_live=true")
    assert proc.returncode == 1
    assert 'alpaca_live = true needs broker = "alpaca"' in " ".join(proc.stderr.split())
    proc = qa.plan("-refresh=false", "-var", "broker=paper")
    assert proc.returncode == 1
    assert "broker must be alpaca or sim" in " ".join(proc.stderr.split())
