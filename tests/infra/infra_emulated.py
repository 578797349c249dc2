"""The emulated deploy shared by the deploy and controller tests: seed the model buckets, apply
the dev and qa roots to one moto_server at the same time, read back what Terraform built, and
give the Python controllers what the Lambdas would have (environment, run.sh, boto3 clients).
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import infra_harness as h

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
# Which module's zip each Lambda runs (built by `algostack lambdas package`, uploaded by Terraform).
LAMBDA_MODULES = {
    "AlpacaWebsocketLambda": "alpaca_websocket",
    "TradingServerLambda": "trading_server",
    "TradingServerShutdownLambda": "trading_server_shutdown",
}


def client(server: h.MotoServer, service: str, **kwargs: Any) -> Any:
    """A boto3 client of ``service`` on the emulator, with fake credentials."""
    return boto3.client(
        service,
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        **kwargs,
    )


@dataclass
class Deployed:
    """One committed root applied to the emulator, with its Terraform outputs."""

    env: str
    root: h.TfRoot
    server: h.MotoServer
    zips: Path
    outputs: dict[str, Any] = field(default_factory=dict)
    apply_seconds: float = 0.0

    def args(self, zips: Path | None = None) -> list[str]:
        """The variables of every plan/apply/destroy of this root (``zips``: another build
        directory of the Lambda packages)."""
        # moto implements neither MonitorInstances nor Lambda DeadLetterConfig: both are
        # switched off here and asserted statically in test_infra_static.py.
        return [
            "-no-color",
            "-var-file=terraform.tfvars",
            "-var",
            f"lambda_build_dir={zips or self.zips}",
            "-var",
            f"aws_endpoint_url={self.server.url}",
            "-var",
            "ami_name_filter=amzn2-ami-hvm-*-x86_64-gp2",
            "-var",
            "detailed_monitoring=false",
            "-var",
            "lambda_dead_letter_queue=false",
        ]

    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client on the emulator this root was applied to."""
        return client(self.server, service, **kwargs)

    def plan(self, *extra: str) -> subprocess.CompletedProcess[str]:
        """``terraform plan -detailed-exitcode`` of this root (0 no changes, 2 changes)."""
        return self.root.stateful("plan", "-detailed-exitcode", *self.args(), *extra, check=False)

    def apply(self) -> None:
        """``terraform apply`` then read the outputs (run in a worker thread)."""
        start = time.monotonic()
        proc = self.root.stateful("apply", "-auto-approve", *self.args())
        (self.root.work / "apply.log").write_text(proc.stdout)
        out = self.root.stateful("output", "-json", "-no-color")
        self.outputs = {k: v["value"] for k, v in json.loads(out.stdout).items()}
        self.apply_seconds = time.monotonic() - start

    def destroy(self) -> None:
        """``terraform destroy``; raise with terraform's output when it fails."""
        # State is current (nothing else changes these resources): skip the refresh.
        proc = self.root.stateful("destroy", "-auto-approve", "-refresh=false", *self.args())
        (self.root.work / "destroy.log").write_text(proc.stdout)
        left = live_instances(self)
        functions = self.client("lambda").list_functions()["Functions"]
        left_fn = [f["FunctionName"] for f in functions if f["FunctionName"].endswith(self.env)]
        if left or left_fn:
            raise AssertionError(f"{self.env}: destroy left {sorted(left)} {left_fn}")


def seed_bucket(server: h.MotoServer, env: str) -> None:
    """Create the environment's model bucket holding SEED_KEYS (some must be ignored)."""
    s3 = client(server, "s3")
    s3.create_bucket(Bucket=BUCKETS[env])
    for key in SEED_KEYS:
        s3.put_object(Bucket=BUCKETS[env], Key=key, Body=b"x")


@contextmanager
def deploy_concurrently(
    envs: tuple[str, ...],
    init_root: Callable[[str], h.TfRoot],
    server: h.MotoServer,
    zips: Path,
) -> Iterator[dict[str, Deployed]]:
    """Apply every root in ``envs`` at the same time against ``server``; destroy them after.

    The roots share nothing but the emulator (every name carries the environment), so the
    two applies overlap their waits (SQS, IAM). Every apply is awaited before an error is
    raised, and whatever was applied is destroyed, also when another apply failed.
    """
    deps: dict[str, Deployed] = {}
    for env in envs:
        seed_bucket(server, env)
        deps[env] = Deployed(env, init_root(f"environments/{env}"), server, zips)
    with ThreadPoolExecutor(max_workers=len(envs), thread_name_prefix="tf-apply") as pool:
        futures = {env: pool.submit(dep.apply) for env, dep in deps.items()}
        errors = [f.exception() for f in futures.values()]
    try:
        for err in errors:
            if err is not None:
                raise err
        yield deps
    finally:
        with ThreadPoolExecutor(max_workers=len(envs), thread_name_prefix="tf-destroy") as pool:
            done = [pool.submit(dep.destroy) for dep in deps.values()]
            failures = [str(f.exception()) for f in done if f.exception() is not None]
        if failures:
            raise AssertionError("terraform destroy failed:\n" + "\n".join(failures))


def live_instances(dep: Deployed) -> dict[str, dict[str, Any]]:
    """Instances of the environment (not terminated) by Name tag, with a ``TagMap``."""
    out: dict[str, dict[str, Any]] = {}
    ec2 = dep.client("ec2")
    for res in ec2.describe_instances(
        Filters=[
            {"Name": "tag:Environment", "Values": [dep.env]},
            {
                "Name": "instance-state-name",
                "Values": ["pending", "running", "stopping", "stopped"],
            },
        ]
    )["Reservations"]:
        for inst in res["Instances"]:
            tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
            out[tags["Name"]] = {**inst, "TagMap": tags}
    return out


def user_data(dep: Deployed, instance_id: str) -> dict[str, str]:
    """The ``key=value`` lines of deployment_config.txt written by an instance's user data."""
    attr = dep.client("ec2").describe_instance_attribute(
        InstanceId=instance_id, Attribute="userData"
    )
    text = base64.b64decode(attr["UserData"]["Value"]).decode()
    pairs = (line.strip().split("=", 1) for line in text.splitlines() if "=" in line)
    return {k: v for k, v in pairs if k.isidentifier()}


def lambda_task_root(dep: Deployed, function: str, dest: Path, module: str | None = None) -> Path:
    """Unpack the zip the deployed Lambda ``function`` runs into ``dest``: its
    ``$LAMBDA_TASK_ROOT``. The built zip of ``module`` (default: the function's own) must be
    byte-for-byte what Terraform uploaded, else ``AssertionError``."""
    conf = dep.client("lambda").get_function_configuration(FunctionName=function)
    module = module or LAMBDA_MODULES[function.rsplit("_", 1)[0]]
    zip_path = dep.zips / f"{module}.zip"
    digest = base64.b64encode(hashlib.sha256(zip_path.read_bytes()).digest()).decode()
    if conf["CodeSha256"] != digest:
        raise AssertionError(f"{function} does not run {zip_path} ({conf['CodeSha256']})")
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(dest)
    return dest


def lambda_environment(dep: Deployed, function: str) -> dict[str, str]:
    """The environment variables Terraform set on a Lambda."""
    conf = dep.client("lambda").get_function_configuration(FunctionName=function)
    return dict(conf["Environment"]["Variables"])


class FakeTime:
    """A monotonic clock advanced by ``sleep`` (no test sleeps); ``wall`` is real time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        """Fake monotonic seconds."""
        return self.now

    def sleep(self, seconds: float) -> None:
        """Advance the clock instead of sleeping."""
        self.slept.append(seconds)
        self.now += seconds


class LambdaContext:
    """The part of Lambda's context the handlers read."""

    def __init__(self, request_id: str, remaining_ms: int = 880_000) -> None:
        self.aws_request_id = request_id
        self._remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left (fixed)."""
        return self._remaining_ms


class CallLog:
    """Record the parameters of chosen API calls made through real boto3 clients."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def attach(self, boto_client: Any) -> None:
        """Record every call made by ``boto_client``."""
        service = boto_client.meta.service_model.service_id.hyphenize()
        boto_client.meta.events.register(f"provide-client-params.{service}", self._hook)

    def _hook(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((str(model.name), dict(params)))

    def of(self, operation: str) -> list[dict[str, Any]]:
        """The parameters of every recorded call of ``operation``."""
        return [params for name, params in self.calls if name == operation]

    def names(self) -> list[str]:
        """Operation names in call order."""
        return [name for name, _ in self.calls]
