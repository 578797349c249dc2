"""Emulated deploy: apply the qa (default run) and dev (slow) roots to moto_server and check
through boto3 what Terraform built; re-plan shows no changes; a new model key plans exactly one
instance; the shutdown controller stops exactly the instances Terraform made; destroy is clean."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import infra_harness as h
import pytest

from algostack.core.naming import group_models

SEED_KEYS = [
    "models/xgb/SPY/model_7-outer_0_inner_0.onnx",
    "models/xgb/SPY/model_7-outer_1_inner_0.onnx",
    "models/lin/QQQ/12-outer_0_inner_1.json",
    "models/readme.txt",
    "models/xgb/SPY/nonum-outer_0_inner_0.onnx",
    "models/xgb/SPY/model_7/live/2024-01-02/live_trader.log",
    "models/xgb/SPY/",
    "models/a/b/c/model_1-outer_0_inner_0.onnx",
    "models/xgb/SPY/model_3-outer_x_inner_0.onnx",
]
BUCKETS = {"dev": "algo-model-deploy-dev", "qa": "algo-model-deploy"}


def _client(server: h.MotoServer, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@dataclass
class Deployed:
    env: str
    root: Path
    server: h.MotoServer
    tf: h.Terraform
    outputs: dict[str, Any]

    def args(self) -> list[str]:
        # moto implements neither MonitorInstances nor Lambda DeadLetterConfig: both are
        # switched off here and asserted statically in test_infra_static.py.
        return [
            "-no-color",
            "-var-file=terraform.tfvars",
            "-var",
            f"aws_endpoint_url={self.server.url}",
            "-var",
            "ami_name_filter=amzn2-ami-hvm-*-x86_64-gp2",
            "-var",
            "detailed_monitoring=false",
            "-var",
            "lambda_dead_letter_queue=false",
        ]

    def client(self, service: str) -> Any:
        return _client(self.server, service)


def _deploy(env: str, tf: h.Terraform, init_root, server: h.MotoServer) -> Iterator[Deployed]:  # type: ignore[no-untyped-def]
    s3 = _client(server, "s3")
    s3.create_bucket(Bucket=BUCKETS[env])
    for key in SEED_KEYS:
        s3.put_object(Bucket=BUCKETS[env], Key=key, Body=b"x")
    root = init_root(f"environments/{env}")
    dep = Deployed(env, root, server, tf, {})
    tf.run(root, "apply", "-auto-approve", *dep.args())
    out = tf.run(root, "output", "-json", "-no-color")
    dep.outputs = {k: v["value"] for k, v in json.loads(out.stdout).items()}
    try:
        yield dep
    finally:
        tf.run(root, "destroy", "-auto-approve", *dep.args(), check=False)


@pytest.fixture(scope="module")
def qa(tf: h.Terraform, init_root, moto_server: h.MotoServer) -> Iterator[Deployed]:  # type: ignore[no-untyped-def]
    yield from _deploy("qa", tf, init_root, moto_server)


def _instances(dep: Deployed) -> dict[str, dict[str, Any]]:
    ec2 = dep.client("ec2")
    out: dict[str, dict[str, Any]] = {}
    for res in ec2.describe_instances(
        Filters=[
            {"Name": "tag:Environment", "Values": [dep.env]},
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopped"]},
        ]
    )["Reservations"]:
        for inst in res["Instances"]:
            tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
            out[tags["Name"]] = {**inst, "TagMap": tags}
    return out


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


def test_qa_instances_tags_imdsv2_and_encryption(qa: Deployed) -> None:
    insts = _instances(qa)
    assert set(insts) == {
        "alpaca-websocket-ingest-qa",
        "trading-server-qa-SPY-xgb-7",
        "trading-server-qa-QQQ-lin-12",
    }
    trader = insts["trading-server-qa-SPY-xgb-7"]
    for key, value in {
        "Environment": "qa",
        "Project": "algostack",
        "Role": "trader",
        "ModelPrefix": "models/xgb/SPY/model_7",
        "ModelType": "xgb",
        "Symbol": "SPY",
        "ModelId": "model_7",
        "ModelNumber": "7",
    }.items():
        assert trader["TagMap"][key] == value, key
    assert insts["alpaca-websocket-ingest-qa"]["TagMap"]["Role"] == "ingest"
    ec2 = qa.client("ec2")
    for inst in insts.values():
        assert inst["MetadataOptions"]["HttpTokens"] == "required"
        assert inst["InstanceType"] == "t3.small"
        assert "KeyName" not in inst
        vol_id = inst["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
        vol = ec2.describe_volumes(VolumeIds=[vol_id])["Volumes"][0]
        assert vol["Encrypted"] is True
        assert vol["KmsKeyId"].endswith(
            qa.client("kms").describe_key(KeyId="alias/algostack-qa")["KeyMetadata"]["KeyId"]
        )


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


def test_qa_replan_shows_no_changes(qa: Deployed) -> None:
    proc = qa.tf.run(qa.root, "plan", "-detailed-exitcode", *qa.args(), check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "No changes." in proc.stdout


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


def test_qa_shutdown_controller_stops_exactly_the_terraform_instances(
    qa: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    handlers = pytest.importorskip("algostack.control.handlers")
    from algostack.control.config import ControlConfig
    from algostack.control.runtime import Clients

    lam_env = qa.client("lambda").get_function_configuration(
        FunctionName="TradingServerShutdownLambda_qa"
    )["Environment"]["Variables"]
    for k, v in lam_env.items():
        monkeypatch.setenv(k, v)
    config = ControlConfig.from_env()
    clients = Clients(ec2=qa.client("ec2"), ssm=qa.client("ssm"), s3=qa.client("s3"))

    class Ctx:
        aws_request_id = "infra-test-shutdown"

        def get_remaining_time_in_millis(self) -> int:
            return 290_000

    made = {i["InstanceId"] for i in _instances(qa).values()}
    result = handlers.handle(
        handlers.controllers.run_shutdown,
        {"source": "test"},
        Ctx(),
        clients=clients,
        config=config,
    )
    assert result["component"] == "shutdown"
    states = {i["InstanceId"]: i["State"]["Name"] for i in _instances(qa).values()}
    assert set(states) == made
    assert set(states.values()) <= {"stopping", "stopped"}
