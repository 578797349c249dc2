"""An AWS trading day on this machine, end to end, the way it runs on AWS.

:class:`AwsDay` builds the stand-in AMI, serves the repository over SSH, starts the fake
Alpaca market-data and trading servers and the emulated cloud, seeds the bucket and secrets
as docs/operations.md ("First deploy on a fresh account") asks a user to, builds the Lambda
packages with ``algostack lambdas package`` and runs ``terraform init`` and ``apply`` on the
committed environment root. A day is then what AWS would do: the Scheduler's event to the
ingest controller, its on-success destination envelope to the trading controller, market
data streamed at speed while the traders trade, the shutdown rule's event to the shutdown
controller. Orders reach the fake Alpaca only through the execution gateway on the ingest
host (REST and the ``trade_updates`` websocket); trading hosts hold no Alpaca key. Used by
tests/aws_day and bench/aws_day.py.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from algostack.core.naming import ModelSpec, model_number
from algostack.testing.aws.cloud import EmulatedCloud
from algostack.testing.aws.gitserver import GitServer
from algostack.testing.aws.image import CACHE_ROOT, build_image
from algostack.testing.aws.terraform import Terraform
from algostack.testing.fake_alpaca import FakeAlpacaServer
from algostack.testing.fake_alpaca_trading import FakeAlpacaTrading

REPO = Path(__file__).resolve().parents[4]
NY = ZoneInfo("America/New_York")
T = TypeVar("T")
LAMBDAS = {
    "ingest": ("AlpacaWebsocketLambda", "alpaca_websocket", "ingest_handler"),
    "trading": ("TradingServerLambda", "trading_server", "trading_handler"),
    "shutdown": ("TradingServerShutdownLambda", "trading_server_shutdown", "shutdown_handler"),
}
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's account
SCHEDULER_INPUT = {"source": "scheduler", "schedule": "daily-start"}
PAPER_KEY = "PKEMULATEDDAY0000001"
PAPER_SECRET = "emulated-day-secret"  # noqa: S105 - the fake broker's key, not a credential


def session_start(day: date) -> datetime:
    """08:30 New York on ``day``: when the Scheduler starts the desk."""
    return datetime.combine(day, datetime.min.time(), NY).replace(hour=8, minute=30)


class Loop:
    """An asyncio loop in a thread of its own (fake Alpaca, NATS watcher)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 600) -> T:
        """Run ``coro`` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def stop(self) -> None:
        """Stop the loop."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()


class LambdaContext:
    """What the handlers read of Lambda's context: request id and time left."""

    def __init__(self, timeout_s: float) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self._end = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's timeout."""
        return max(0, int((self._end - time.monotonic()) * 1000))


@dataclass
class Invoked:
    """One controller invocation: its result or error, and how long it took."""

    name: str
    result: dict[str, Any] | None
    error: str | None
    seconds: float

    @property
    def ok(self) -> bool:
        """True when the handler returned (Lambda's on-success condition)."""
        return self.error is None


@dataclass
class DayReport:
    """What one emulated session day did."""

    day: date
    invocations: list[Invoked] = field(default_factory=list)
    ready_s: float | None = None
    bootstrap_s: dict[str, float] = field(default_factory=dict)


class AwsDay:
    """The emulated AWS desk (use as a context manager; see the module docstring)."""

    def __init__(
        self,
        workdir: Path,
        *,
        environment: str = "qa",
        models: tuple[str, ...] = ("models/sma/AAPL/model_4", "models/gbt/MSFT/model_2"),
        seed: int = 7,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.workdir = workdir
        self.env = environment
        self.model_prefixes = models
        self.seed = seed
        self.say = progress or (lambda _msg: None)
        self.bucket = (
            "algo-model-deploy" if environment == "qa" else f"algo-model-deploy-{environment}"
        )
        self.branch = {"dev": "feature/dev", "qa": "main", "prod": "live"}[environment]
        self.root = REPO / "infra" / "environments" / environment
        self.loop = Loop()
        self.cloud: EmulatedCloud | None = None
        self.git: GitServer | None = None
        self.market: FakeAlpacaServer | None = None
        self.broker: FakeAlpacaTrading | None = None
        self.tf: Terraform | None = None
        self.packages = REPO / "infra" / "build"
        self.tf_vars: dict[str, str] = {}
        self.symbols: list[str] = sorted({p.split("/")[2] for p in models})

    # -- set up --------------------------------------------------------------------------

    def __enter__(self) -> AwsDay:
        try:
            self.setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def setup(self) -> None:
        """Everything up to and including ``terraform apply`` of the environment root."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.say("building the stand-in AMI (cached after the first time)")
        image = build_image()
        self.git = GitServer(self.workdir / "git", REPO, self.branch)
        self.market = FakeAlpacaServer(key_id=PAPER_KEY, secret_key=PAPER_SECRET)
        self.loop.run(self.market.start())
        self.broker = FakeAlpacaTrading(PAPER_KEY, PAPER_SECRET).start()
        pip_cache = CACHE_ROOT / "pip-cache"
        pip_cache.mkdir(parents=True, exist_ok=True)
        binds_ro = [("/etc/ssl/certs/ca-certificates.crt", "/etc/ssl/certs/ca-certificates.crt")]
        binds_ro += [
            (d, d) for d in ("/opt/wheels", "/opt/pypi", "/opt/pypi-more") if Path(d).is_dir()
        ]
        self.cloud = EmulatedCloud(
            self.workdir / "cloud",
            image,
            host_environment={
                # The seams a real instance does not need: where AWS and Alpaca answer.
                "AWS_ENDPOINT_URL": "",  # filled below, once moto has its port
                "ALGOSTACK_ALPACA_STREAM_URL": self.market.ws_url,
                "ALGOSTACK_ALPACA_DATA_URL": self.market.rest_url,
                # Only the ingest host's gateway holds keys to use these two.
                "ALGOSTACK_ALPACA_TRADING_URL": self.broker.url,
                "ALGOSTACK_ALPACA_TRADING_STREAM_URL": self.broker.stream_url,
                "PIP_CACHE_DIR": "/var/cache/pip-shared",
            },
            binds_ro=tuple(binds_ro),
            binds=((str(pip_cache), "/var/cache/pip-shared"),),
            host_files={"/etc/pip.conf": host_pip_conf()},
        )
        self.cloud.host_environment["AWS_ENDPOINT_URL"] = self.cloud.url
        self.cloud.start()
        self.say(f"emulated AWS on {self.cloud.url}; repository at {self.git.url}")
        self.seed_account()
        self.package_lambdas()
        self.tf = Terraform(self.root, self.workdir / "terraform")
        self.tf_vars = {
            "aws_endpoint_url": self.cloud.url,
            "ami_name_filter": "amzn2-ami-hvm-*-x86_64-gp2",
            "detailed_monitoring": "false",
            "lambda_dead_letter_queue": "false",
            "git_repository": self.git.url,
            # The traders' journal sync every 20 s instead of 15 min, so a day sees it fire.
            "sync_schedule": "*:*:0/20",
        }
        self.say("terraform init + apply of infra/environments/" + self.env)
        self.tf.init()
        self.tf.apply(self.tf_vars)
        self.cloud.wait_idle()

    def seed_account(self) -> None:
        """What a user creates before the first apply: the bucket with models, the secrets."""
        from algostack.local.demo_models import ensure_demo_models

        assert self.cloud is not None and self.git is not None
        store = CACHE_ROOT / f"demo-models-seed{self.seed}"
        specs = ensure_demo_models(store, seed=self.seed)
        s3 = self.cloud.client("s3")
        s3.create_bucket(Bucket=self.bucket)
        wanted = set(self.model_prefixes)
        for spec in specs:
            if spec.prefix not in wanted:
                continue
            for fold in spec.folds:
                body = (store / fold.key).read_bytes()
                s3.put_object(Bucket=self.bucket, Key=fold.key, Body=body)
        sm = self.cloud.client("secretsmanager")
        sm.create_secret(Name="github/ssh-key", SecretString=self.git.deploy_key)
        sm.create_secret(
            Name=f"alpaca/{self.env}",
            SecretString=json.dumps(
                {"APCA_API_KEY_ID": PAPER_KEY, "APCA_API_SECRET_KEY": PAPER_SECRET}
            ),
        )

    def package_lambdas(self) -> None:
        """``algostack lambdas package``, the command a user runs before ``terraform plan``."""
        exe = Path(sys.executable).parent / "algostack"
        subprocess.run(
            [str(exe), "lambdas", "package"],
            check=True,
            capture_output=True,
        )

    def close(self) -> None:
        """Stop everything this object started (hosts are powered off hard)."""
        if self.cloud is not None:
            self.cloud.stop()
        if self.broker is not None:
            self.broker.stop()
        if self.market is not None:
            self.loop.run(self.market.stop(), timeout_s=30)
        if self.git is not None:
            self.git.stop()
        self.loop.stop()

    # -- the Lambdas ---------------------------------------------------------------------

    def task_root(self, kind: str) -> Path:
        """Unpack the package Terraform uploaded for ``kind``: the Lambda's task root."""
        _, module, _ = LAMBDAS[kind]
        zip_path = self.packages / f"{module}.zip"
        dest = self.workdir / "task-roots" / module
        if not dest.exists():
            with zipfile.ZipFile(zip_path) as zf:
                zf.extractall(dest)
        return dest

    def invoke(
        self, kind: str, event: dict[str, Any], at: datetime, *, timeout_s: float = 900
    ) -> Invoked:
        """Invoke a controller Lambda as AWS would: its environment, its package, ``event``;
        the clock reads ``at`` when the invocation starts."""
        from algostack.control import controllers
        from algostack.control.config import ControlConfig
        from algostack.control.handlers import handle
        from algostack.control.runtime import Clients, Runtime

        assert self.cloud is not None
        name, _, handler = LAMBDAS[kind]
        function = f"{name}_{self.env}"
        conf = self.cloud.client("lambda").get_function_configuration(FunctionName=function)
        env = dict(conf.get("Environment", {}).get("Variables", {}))
        env["LAMBDA_TASK_ROOT"] = str(self.task_root(kind))
        controller = {
            "ingest_handler": controllers.run_ingest,
            "trading_handler": controllers.run_trading,
            "shutdown_handler": controllers.run_shutdown,
        }[handler]
        offset = at.timestamp() - time.time()
        runtime = Runtime(wall=lambda: time.time() + offset)
        clients = Clients(
            ec2=self.cloud.client("ec2"), ssm=self.cloud.client("ssm"), s3=self.cloud.client("s3")
        )
        t0 = time.monotonic()
        try:
            result = handle(
                controller,
                event,
                LambdaContext(min(timeout_s, float(conf.get("Timeout", 900)))),
                clients=clients,
                config=ControlConfig.from_env(env),
                runtime=runtime,
            )
            return Invoked(function, result, None, time.monotonic() - t0)
        except Exception as exc:
            return Invoked(function, None, f"{type(exc).__name__}: {exc}", time.monotonic() - t0)

    def fleet_status(self, day: date) -> dict[str, Any]:
        """``algostack fleet status`` as an operator runs it against this desk: every
        instance, and each running host's algostack units read over SSM from its systemd."""
        from algostack.control.config import ControlConfig
        from algostack.control.runtime import Clients
        from algostack.control.status import fleet_status

        assert self.cloud is not None
        name = f"{LAMBDAS['trading'][0]}_{self.env}"
        conf = self.cloud.client("lambda").get_function_configuration(FunctionName=name)
        cfg = ControlConfig.from_env(dict(conf.get("Environment", {}).get("Variables", {})))
        clients = Clients(ec2=self.cloud.client("ec2"), ssm=self.cloud.client("ssm"))
        return fleet_status(clients, cfg, day)

    # -- a day ---------------------------------------------------------------------------

    def invoke_ingest(self, day: date, *, timeout_s: float = 900) -> Invoked:
        """The Scheduler's 08:30 New York event to the ingest controller."""
        self.say(f"{day}: ingest controller")
        return self.invoke("ingest", SCHEDULER_INPUT, session_start(day), timeout_s=timeout_s)

    def invoke_trading(self, day: date, ingest: Invoked, *, timeout_s: float = 900) -> Invoked:
        """Lambda's on-success destination envelope of ``ingest`` to the trading controller."""
        function = f"{LAMBDAS['ingest'][0]}_{self.env}"
        envelope = {
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(),
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}:$LATEST",
                "condition": "Success",
                "approximateInvokeCount": 1,
            },
            "requestPayload": SCHEDULER_INPUT,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"},
            "responsePayload": ingest.result,
        }
        self.say(f"{day}: trading controller (on-success destination)")
        at = session_start(day) + timedelta(seconds=ingest.seconds)
        return self.invoke("trading", envelope, at, timeout_s=timeout_s)

    def start_day(self, day: date, *, timeout_s: float = 900) -> DayReport:
        """08:30 New York: the Scheduler's event -> ingest; on success -> trading; then wait
        until every trader heartbeats (``ready_s``)."""
        report = DayReport(day)
        t0 = time.monotonic()
        ingest = self.invoke_ingest(day, timeout_s=timeout_s)
        report.invocations.append(ingest)
        if not ingest.ok:
            return report
        trading = self.invoke_trading(day, ingest, timeout_s=timeout_s)
        report.invocations.append(trading)
        if trading.ok:
            self.wait_heartbeats(timeout_s=120)
            report.ready_s = time.monotonic() - t0
        report.bootstrap_s = self.bootstrap_seconds()
        return report

    def bootstrap_seconds(self) -> dict[str, float]:
        """run.sh wall time per host, from the last bootstrap each host ran (the ingest and
        trading controllers' commands; the shutdown's sync is not a bootstrap)."""
        assert self.cloud is not None
        return {
            self.cloud.machines[inv.instance_id].name: inv.wall_s
            for inv in self.cloud.invocations.values()
            if inv.comment.startswith(("algostack ingest", "algostack trading"))
        }

    def nats_credentials(self, role: str) -> tuple[str, str]:
        """A NATS role's user and password, from its secret."""
        assert self.cloud is not None
        sm = self.cloud.client("secretsmanager")
        raw = sm.get_secret_value(SecretId=f"algostack/{self.env}/nats/{role}")["SecretString"]
        doc = json.loads(raw)
        return str(doc["user"]), str(doc["password"])

    def ingest_address(self) -> str:
        """The ingest host's private address."""
        assert self.cloud is not None
        return self.cloud.by_name(f"alpaca-websocket-ingest-{self.env}").private_ip

    def wait_heartbeats(self, timeout_s: float) -> set[str]:
        """Wait until every trader has published a heartbeat on NATS; return the models."""
        import nats

        user, password = self.nats_credentials("dashboard")
        url = f"nats://{self.ingest_address()}:4222"
        want = {p.removeprefix("models/").replace("/", "-") for p in self.model_prefixes}

        async def watch() -> set[str]:
            seen: set[str] = set()
            nc = await nats.connect(url, user=user, password=password, connect_timeout=10)
            try:
                done = asyncio.Event()

                async def on_msg(msg: Any) -> None:
                    parts = msg.subject.split(".")
                    if parts[-1] == "heartbeat":
                        seen.add(".".join(parts[3:-1]))
                        if all(any(w in s for s in seen) for w in want):
                            done.set()

                await nc.subscribe(f"algostack.{self.env}.trader.>", cb=on_msg)
                try:
                    await asyncio.wait_for(done.wait(), timeout_s)
                except TimeoutError:
                    raise TimeoutError(
                        f"heartbeats seen from {sorted(seen)}, wanted {sorted(want)}"
                    ) from None
                return seen
            finally:
                await nc.close()

        return self.loop.run(watch(), timeout_s + 30)

    def stream_session(self, day: date, *, minutes: int = 390, bars_per_s: float = 40.0) -> int:
        """Stream the day's synthetic minute bars through the fake Alpaca at speed; the fake
        broker fills at each symbol's last close. Returns the bars sent."""
        from algostack.adapters.offline.synthetic import SyntheticSource
        from algostack.core.market import NS_PER_MIN, Bar

        assert self.market is not None and self.broker is not None
        market, broker = self.market, self.broker

        async def run() -> int:
            await market.wait_subscribed(1, timeout_s=60)
            source = SyntheticSource(
                self.symbols, day=day, seed=self.seed, speed=None, include_trades=False
            )
            sent = 0
            async for batch in source.stream():
                bars = [e for e in batch if isinstance(e, Bar)]
                for bar in bars:
                    broker.set_price(bar.symbol, bar.close)
                    broker.now = datetime.fromtimestamp((bar.ts + NS_PER_MIN) / 1e9, UTC)
                sent += len(bars)
                await market.publish(bars)
                await asyncio.sleep(len(bars) / bars_per_s)
                if sent >= minutes * len(self.symbols):
                    break
            return sent

        return self.loop.run(run(), 3600)

    def wait_timer_sync(self, day: date, timeout_s: float = 120.0) -> float:
        """Wait until the sync timer of every trader has put its log for ``day`` in the
        bucket (before any shutdown); return the seconds waited."""
        t0 = time.monotonic()
        want = [f"{p}/live/{day.isoformat()}/live_trader.log" for p in self.model_prefixes]
        while time.monotonic() - t0 < timeout_s:
            found = self.bucket_objects("models/")
            if all(k in found for k in want):
                return time.monotonic() - t0
            time.sleep(2)
        raise TimeoutError(f"the sync timers did not upload {want} within {timeout_s:.0f} s")

    def journal_shares(self, days: tuple[date, ...]) -> dict[tuple[str, str], int]:
        """Shares per (symbol, side) over every model's ``trades_<day>.csv`` of ``days``, read
        on the trading hosts' volumes."""
        import csv
        import io

        shares: dict[tuple[str, str], int] = {}
        for prefix in self.model_prefixes:
            for day in days:
                try:
                    text = self.journal(prefix, f"trades_{day.isoformat()}.csv").read_text()
                except FileNotFoundError:
                    continue
                for row in csv.DictReader(io.StringIO(text)):
                    key = (row["symbol"], row["side"])
                    shares[key] = shares.get(key, 0) + int(row["qty"])
        return shares

    @staticmethod
    def broker_shares(orders: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
        """Filled shares per (symbol, side) of the fake Alpaca's ``orders``."""
        shares: dict[tuple[str, str], int] = {}
        for o in orders:
            if int(o["filled_qty"]):
                key = (o["symbol"], o["side"])
                shares[key] = shares.get(key, 0) + int(o["filled_qty"])
        return shares

    @staticmethod
    def net(shares: dict[tuple[str, str], int]) -> dict[str, int]:
        """Signed shares per symbol (flat symbols omitted)."""
        out: dict[str, int] = {}
        for (symbol, side), qty in shares.items():
            out[symbol] = out.get(symbol, 0) + (qty if side == "buy" else -qty)
        return {sym: q for sym, q in out.items() if q}

    def wait_books_settled(self, day: date, orders_from: int, timeout_s: float = 60.0) -> float:
        """Wait until what the models journaled for ``day`` is, per symbol, what the account
        executed that day (its orders from index ``orders_from`` on); return the seconds.

        The bars of an emulated session end seconds before the shutdown (on AWS, an hour
        before it): the fills of the last bar's orders must reach the journals first.
        """
        assert self.broker is not None
        t0 = time.monotonic()
        while True:
            executed = self.net(self.broker_shares(self.broker.orders()[orders_from:]))
            journaled = self.net(self.journal_shares((day,)))
            if journaled == executed:
                waited = time.monotonic() - t0
                self.say(f"{day}: the journals equal the account after {waited:.1f} s")
                return waited
            if time.monotonic() - t0 > timeout_s:
                raise TimeoutError(
                    f"{day}: the journals hold {journaled}, the account executed {executed}"
                )
            time.sleep(0.5)

    def end_day(self, day: date, *, timeout_s: float = 900) -> Invoked:
        """21:05 UTC: the shutdown rule's event -> final sync, then every host stopped."""
        at = datetime.combine(day, datetime.min.time(), UTC).replace(hour=21, minute=5)
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": "us-east-1",
            "resources": [
                f"arn:aws:events:us-east-1:123456789012:rule/trading-server-shutdown-schedule-{self.env}"
            ],
            "detail": {},
        }
        self.say(f"{day}: shutdown controller")
        invoked = self.invoke("shutdown", event, at, timeout_s=timeout_s)
        assert self.cloud is not None
        self.cloud.wait_idle(timeout_s=300)
        return invoked

    # -- what is left behind --------------------------------------------------------------

    def spec(self, prefix: str) -> ModelSpec:
        """The model of a prefix ``models/<type>/<symbol>/<model_id>`` (its key, its host)."""
        _, model_type, symbol, model_id = prefix.split("/")
        return ModelSpec(model_type, symbol, model_id, model_number(model_id))

    def journal(self, prefix: str, name: str) -> Path:
        """A file of the model's journal on its trading host's volume."""
        spec = self.spec(prefix)
        inside = f"/opt/algostack/state/journals/{spec.key}/{name}"
        return self.host_file(spec.instance_name(self.env), inside)

    def unit_environment(self, name: str, unit: str) -> dict[str, str]:
        """The environment of ``unit``'s running main process on host ``name`` (what systemd
        gave it: its ``Environment=`` lines, its ``EnvironmentFile``, the defaults)."""
        assert self.cloud is not None
        host = self.cloud.by_name(name).host
        pid = host.nsenter(["systemctl", "show", "-p", "MainPID", "--value", unit]).stdout.strip()
        if not pid or pid == "0":
            raise RuntimeError(f"{unit} is not running on {name}")
        raw = host.nsenter(["cat", f"/proc/{pid}/environ"]).stdout
        return dict(item.partition("=")[::2] for item in raw.split("\0") if "=" in item)

    def account_positions(self) -> dict[str, int]:
        """The fake Alpaca account's positions (signed shares), read as a client reads them."""
        import urllib.request

        assert self.broker is not None
        req = urllib.request.Request(  # noqa: S310 - the fake's own http://127.0.0.1 URL
            f"{self.broker.url}/v2/positions",
            headers={"APCA-API-KEY-ID": PAPER_KEY, "APCA-API-SECRET-KEY": PAPER_SECRET},
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=10) as resp:
            rows = json.loads(resp.read())
        return {str(r["symbol"]): int(r["qty"]) for r in rows if int(r["qty"])}

    def host_file(self, name: str, inside: str) -> Path:
        """A file on a host's volume (readable whether the host runs or not)."""
        assert self.cloud is not None
        machine = self.cloud.by_name(name)
        return machine.host.upper / inside.lstrip("/")

    def bucket_objects(self, prefix: str = "") -> dict[str, bytes]:
        """Every object in the bucket under ``prefix``."""
        assert self.cloud is not None
        s3 = self.cloud.client("s3")
        out: dict[str, bytes] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                out[item["Key"]] = s3.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
        return out


def host_pip_conf() -> str:
    """pip's configuration for the hosts: this machine's package indexes (bound read-only)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    )
    lines = ["[global]"]
    for raw in proc.stdout.splitlines():
        key, _, value = raw.partition("=")
        section, _, name = key.partition(".")
        if section == "global" and name in (
            "find-links",
            "extra-index-url",
            "index-url",
            "cert",
            "default-timeout",
        ):
            value = value.strip().strip("'")
            if name == "extra-index-url":
                # Only the local index that holds the project's dependencies.
                value = " ".join(v for v in value.split() if "pypi-more" not in v)
            lines.append(f"{name} = {value}")
    return "\n".join(lines) + "\n"
