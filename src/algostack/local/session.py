"""The settings of one local run: where things go, which day, how fast, which source.

Everything lives under the state directory (``./.algostack`` by default)::

    models/...                 the demo model store (laid out like the bucket's models/)
    bucket/models/.../live/    what sync uploads: the local mirror of the S3 bucket
    journals/<run id>/<model>  each trader's journal directory for this run
    nats/                      the embedded nats-server's JetStream store
    runs/<run id>/             summary.json, report.html and the children's logs

Pure apart from path arithmetic: nothing is created here (``RunPaths.create`` does that).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path

from algostack.adapters.offline.synthetic import check_speed
from algostack.core.sessions import Session, new_york_date, previous_session, session
from algostack.errors import ConfigError

SESSION_MINUTES = 390
DEFAULT_SESSION_WALL_S = 30.0
"""Wall seconds the default run spends on a full 390-minute session (leaves room for
start-up, shutdown, the final sync and the report inside the 60 s budget)."""
DEFAULT_SPEED = SESSION_MINUTES * 60.0 / DEFAULT_SESSION_WALL_S  # 780x real time
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


class SourceKind(StrEnum):
    """Where the run's market data comes from."""

    SYNTHETIC = "synthetic"
    REPLAY = "replay"
    ALPACA = "alpaca"


def latest_session_day(today: date | None = None) -> date:
    """The most recent NYSE session on or before ``today`` (default: today in New York)."""
    day = today or new_york_date(datetime.now(UTC))
    return day if session(day) is not None else previous_session(day).day


def new_york_date_of_ts(ts: int) -> date:
    """The New York date of a UTC ns timestamp (the trading day a bar belongs to)."""
    return new_york_date(datetime.fromtimestamp(ts / 1e9, UTC))


def parse_day(text: str | None, option: str = "--day") -> date | None:
    """``YYYY-MM-DD`` -> date (``None`` passes through); ``ConfigError`` naming ``option``."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option} must be YYYY-MM-DD, got {text!r}") from None


def new_run_id(now: float | None = None) -> str:
    """A sortable run id from the wall clock: ``20240315T143000-123``."""
    t = time.time() if now is None else now
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(t)) + f"-{int(t * 1000) % 1000:03d}"


class HomeLock:
    """One ``algostack run`` per state directory: an exclusive ``flock`` on ``<home>/.lock``
    (holding the run's PID), held until the process ends. Two runs on one home would share
    one JetStream store and overwrite each other's bucket files."""

    def __init__(self, home: Path) -> None:
        self.path = home / ".lock"
        self._fd: int | None = None

    def acquire(self) -> HomeLock:
        """Take the lock; ``ConfigError`` naming the other run's PID when it is held."""
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(
                f"another algostack run (PID {other}) is using {self.path.parent}: wait for it "
                "to finish or give this run another --home"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Let another run have the home (the lock also ends with the process)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass(frozen=True)
class RunPaths:
    """Every path of one run, derived from the state directory and the run id."""

    home: Path
    run_id: str
    store_dir: Path | None = None
    """A model store other than the state directory (``--models DIR``)."""

    def __post_init__(self) -> None:
        if not _RUN_ID_RE.match(self.run_id):
            raise ConfigError(f"run id {self.run_id!r} must be letters, digits, '_', '-', '.'")

    @property
    def store(self) -> Path:
        """The model store root (holds ``models/``): the state directory unless overridden."""
        return self.store_dir if self.store_dir is not None else self.home

    @property
    def models(self) -> Path:
        """``<home>/models``: where the demo models are generated."""
        return self.home / "models"

    @property
    def bucket(self) -> Path:
        """``<home>/bucket``: the local mirror of the S3 bucket."""
        return self.home / "bucket"

    @property
    def nats(self) -> Path:
        """``<home>/nats``: the JetStream store."""
        return self.home / "nats"

    @property
    def journals(self) -> Path:
        """``<home>/journals/<run id>``: this run's journal directories."""
        return self.home / "journals" / self.run_id

    def journal_dir(self, model_key: str) -> Path:
        """One model's journal directory for this run."""
        return self.journals / model_key

    @property
    def run_dir(self) -> Path:
        """``<home>/runs/<run id>``: summary, report and logs."""
        return self.home / "runs" / self.run_id

    @property
    def logs(self) -> Path:
        """``<run dir>/logs``: one file per child process."""
        return self.run_dir / "logs"

    @property
    def summary_json(self) -> Path:
        """``<run dir>/summary.json``."""
        return self.run_dir / "summary.json"

    @property
    def bars_csv(self) -> Path:
        """``<run dir>/bars.csv``: every bar the run traded (replayable)."""
        return self.run_dir / "bars.csv"

    @property
    def report_html(self) -> Path:
        """``<run dir>/report.html``."""
        return self.run_dir / "report.html"

    def create(self) -> RunPaths:
        """Create the directories this run writes to; return self."""
        for p in (self.bucket, self.nats, self.journals, self.logs):
            p.mkdir(parents=True, exist_ok=True)
        return self


@dataclass(frozen=True)
class RunConfig:
    """What ``algostack run`` was asked to do (validated on construction)."""

    paths: RunPaths
    day: date
    source: SourceKind = SourceKind.SYNTHETIC
    speed: float | None = DEFAULT_SPEED
    """Times real time; ``None`` = as fast as possible (the traders keep up through JetStream)."""
    replay_file: Path | None = None
    packed: bool = False
    dashboard: bool = False
    dashboard_port: int = 8501
    seed: int = 7
    env: str = "local"
    slippage_bps: float = 1.0
    models: tuple[str, ...] = field(default=())
    """Only these model prefixes or keys (empty: every model in the store)."""
    catch_up_timeout_s: float = 15.0
    """After the source ends, how long traders may take to process the last bar."""
    stop_timeout_s: float = 3.0
    """Per stage of shutdown: SIGTERM, wait this long, then SIGKILL."""

    def __post_init__(self) -> None:
        check_speed(self.speed)
        if not (self.slippage_bps >= 0 and self.slippage_bps < float("inf")):
            raise ConfigError(f"--slippage-bps must be >= 0, got {self.slippage_bps}")
        if not 1 <= self.dashboard_port <= 65535:
            raise ConfigError(f"--dashboard-port must be 1-65535, got {self.dashboard_port}")
        if self.source is SourceKind.REPLAY and self.replay_file is None:
            raise ConfigError("--replay needs a bars file (.csv or .parquet)")
        if self.replay_file is not None and not Path(self.replay_file).is_file():
            raise ConfigError(f"replay file {self.replay_file} does not exist")
        sess = self.session  # any source: a day outside the calendar is one line here
        if self.source is SourceKind.SYNTHETIC and sess is None:
            raise ConfigError(
                f"{self.day.isoformat()} is not an NYSE session (weekend or holiday): "
                "pick a trading day with --day"
            )

    @property
    def session(self) -> Session | None:
        """The NYSE session of the run's day (``None`` on a weekend or holiday)."""
        return session(self.day)

    @property
    def day_text(self) -> str:
        """The day as ``YYYY-MM-DD`` (the journals' and the bucket's date)."""
        return self.day.isoformat()
