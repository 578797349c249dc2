"""Fixtures for the controller tests: moto for EC2/S3/Parameter Store, a fake SSM command
service behind the real client, an EC2 overlay for states moto cannot produce, fake time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from control_fakes import REGION, Aws, Ec2Overlay, FakeTime
from moto import mock_aws

from algostack.control.config import ControlConfig
from algostack.control.fakes import FakeSsm
from algostack.control.runtime import Clients

AL2023 = {"Name": "name", "Values": ["al2023-ami-2023.*-x86_64"]}


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, fake_time: FakeTime) -> Iterator[Aws]:
    for var in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        session = boto3.session.Session(region_name=REGION)
        clients = Clients(session.client("ec2"), session.client("ssm"), session.client("s3"))
        fake = FakeSsm(fake_time.clock)
        fake.attach(clients.ssm)
        overlay = Ec2Overlay()
        overlay.attach(clients.ec2)
        # The image the stack looks up (infra's ami_name_filter), not all of moto's ~1,300:
        # listing them all costs ~1 s a test.
        amis = clients.ec2.describe_images(Owners=["amazon"], Filters=[AL2023])["Images"]
        ami = amis[0]["ImageId"]
        yield Aws(clients, fake, overlay, fake_time, ami)


@pytest.fixture
def run_sh(tmp_path: Path) -> Path:
    path = tmp_path / "run.sh"
    path.write_text("#!/bin/bash\nset -euo pipefail\necho bootstrap\n")
    return path


@pytest.fixture
def cfg(run_sh: Path) -> ControlConfig:
    return ControlConfig(environment="dev", run_script=run_sh, bucket="algo-model-deploy-dev")
