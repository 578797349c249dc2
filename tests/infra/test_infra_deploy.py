"""Emulated deploy: the dev and qa roots applied concurrently to one moto_server (conftest's
``deployments``); what Terraform built is checked through boto3 against the spec and the
environment matrix; re-plan shows no changes; a new model key plans exactly one instance;
destroy leaves nothing (the fixture's teardown). The controllers run against the same
emulator in test_infra_deploy_controllers.py."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
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


def test_qa_terraform_and_python_parse_the_same_keys(qa: Deployed) -> None:
    models, ignored = group_models(SEED_KEYS)
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
    assert insts[f"alpaca-websocket-ingest-{env}"]["TagMap"]["Role"] == "ingest"
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
    trader_config = user_data(dep, trader["InstanceId"])
    assert trader_config["model_prefix"] == "models/xgb/SPY/model_7"
    assert trader_config["model_number"] == "7"


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
        assert lam.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 1
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


def test_qa_iam_policies_are_scoped(qa: Deployed) -> None:
    iam = qa.client("iam")
    doc = iam.get_role_policy(
        RoleName="trading_server_lambda_qa", PolicyName="trading_server_lambda_qa"
    )["PolicyDocument"]
    stmts = {s["Sid"]: s for s in doc["Statement"]}
    start = stmts["StartStopOwnInstances"]
    assert start["Condition"]["StringEquals"]["aws:ResourceTag/Environment"] == "qa"
    assert start["Condition"]["StringEquals"]["aws:ResourceTag/Project"] == "algostack"
    assert (
        stmts["GrantForEncryptedVolumes"]["Condition"]["Bool"]["kms:GrantIsForAWSResource"]
        == "true"
    )
    assert stmts["RunRecords"]["Resource"].endswith(":parameter/algostack/qa/*")
    wildcard = [s["Sid"] for s in doc["Statement"] if s["Resource"] == "*"]
    assert sorted(wildcard) == ["Describe", "ReadCommands", "Tracing"]
    shutdown = iam.get_role_policy(
        RoleName="trading_server_shutdown_lambda_qa", PolicyName="trading_server_shutdown_lambda_qa"
    )
    actions = json.dumps(shutdown["PolicyDocument"])
    assert "ec2:StartInstances" not in actions
    assert "ec2:StopInstances" in actions
    for role in ("alpaca_websocket_instance_qa", "trading_server_instance_qa"):
        attached = iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
        assert [p["PolicyName"] for p in attached] == ["AmazonSSMManagedInstanceCore"]


def test_replan_of_dev_and_qa_shows_no_changes(deployments: dict[str, Deployed]) -> None:
    def plan(dep: Deployed) -> subprocess.CompletedProcess[str]:
        return dep.tf.run(dep.root, "plan", "-detailed-exitcode", *dep.args(), check=False)

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
        proc = qa.tf.run(qa.root, "plan", "-detailed-exitcode", *qa.args(), check=False)
    finally:
        s3.delete_object(Bucket=BUCKETS["qa"], Key=key)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert 'aws_instance.trader["models/xgb/QQQ/model_9"] will be created' in proc.stdout
    assert "Plan: 1 to add, 0 to change, 0 to destroy." in proc.stdout
