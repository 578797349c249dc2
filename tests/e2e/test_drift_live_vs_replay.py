"""End to end: ``algostack drift`` on the day ``algostack run`` traded and archived (issue 13,
the third "Done when"): no difference on the undisturbed day, exactly the altered fill with
its cause when one live fill's price is changed, one line and exit 2 for a day not archived."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

DAY = "2024-03-15"
JOURNAL = f"live/{DAY}/trades_{DAY}.csv"


def _algostack(
    *args: str, home: Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from algostack.cli import main; main()", *args],
        capture_output=True, text=True, timeout=240, check=False, cwd=cwd,
        env=dict(os.environ, ALGOSTACK_HOME=str(home), **(env or {})),
    )  # fmt: skip


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home after ``algostack run --day DAY`` (demo models trained on the first run)."""
    home = tmp_path_factory.mktemp("drift") / "home"
    run = _algostack("run", "--day", DAY, "--max-speed", "--no-progress", "--no-report",
                     "--json", "--home", str(home), home=home, cwd=home.parent)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return home


def _drift(bucket: Path, home: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    out.mkdir(parents=True, exist_ok=True)
    return _algostack("drift", "--day", DAY, "--dir", str(bucket), "--models", str(home),
                      *extra, home=home, cwd=out)  # fmt: skip


def test_drift_undisturbed_day_reports_no_difference_exit_0(home: Path, tmp_path: Path) -> None:
    res = _drift(home / "bucket", home, tmp_path, "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads(res.stdout)
    assert report["differences"] == 0
    assert len(report["models"]) == 4
    assert all(m["matched"] == m["live_trades"] == m["replay_trades"] > 0 for m in report["models"])
    assert all(m["pnl_diff"] == 0 for m in report["models"])
    assert json.loads((tmp_path / f"drift_{DAY}.json").read_text()) == report
    assert "<table" not in (tmp_path / f"drift_{DAY}.html").read_text()  # nothing to list


def test_drift_altered_fill_price_reports_that_trade_with_its_cause_exit_1(
    home: Path, tmp_path: Path
) -> None:
    bucket = tmp_path / "bucket"
    shutil.copytree(home / "bucket", bucket)
    journal = sorted(bucket.glob(f"models/*/*/*/{JOURNAL}"))[0]
    lines = journal.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[2].split(",")  # the second fill
    cid = row[header.index("client_order_id")]
    row[header.index("price")] = f"{float(row[header.index('price')]) + 0.05:.6f}"
    lines[2] = ",".join(row)
    journal.write_text("\n".join(lines) + "\n")

    res = _drift(bucket, home, tmp_path / "out", "--json")
    assert res.returncode == 1, res.stdout + res.stderr
    report = json.loads(res.stdout)
    assert report["differences"] == 1
    (model,) = [m for m in report["models"] if m["differences"]]
    assert model["prefix"] == str(journal.parents[2].relative_to(bucket))
    (diff,) = model["differences"]
    assert diff["client_order_id"] == cid
    assert diff["kind"] == "price"
    assert diff["cause"].startswith("live fill price differs from the bar")
    assert diff["price_diff"] == pytest.approx(0.05)
    assert diff["time_diff_s"] == 0
    sign = 1 if diff["live"]["side"] == "sell" else -1  # selling higher earns more
    assert model["pnl_diff"] == pytest.approx(sign * 0.05 * diff["live"]["qty"], abs=1e-3)
    assert cid in (tmp_path / "out" / f"drift_{DAY}.html").read_text()
    text = _drift(bucket, home, tmp_path / "out")  # the table names it too
    assert text.returncode == 1 and cid in text.stdout and "1 difference(s)" in text.stdout


def test_drift_day_not_archived_is_one_line_exit_2(home: Path, tmp_path: Path) -> None:
    res = _algostack("drift", "--day", "2024-03-18", "--dir", str(home / "bucket"),
                     "--models", str(home), home=home, cwd=tmp_path)  # fmt: skip
    assert res.returncode == 2
    assert res.stdout == ""
    (line,) = res.stderr.strip().splitlines()
    assert "market/bars/date=2024-03-18/" in line and "no archived bars" in line
    assert not list(tmp_path.glob("drift_*"))


@pytest.fixture(scope="module")
def s3_env(home: Path) -> Iterator[dict[str, str]]:
    """The run's bucket on moto's S3 (``s3://desk``) as the desk lays it out: the archive and
    the journals from ``home/bucket``, the model artifacts under ``models/``. The commands
    reach it through ``AWS_ENDPOINT_URL``, as a user's would reach AWS."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    s3.create_bucket(Bucket="desk")
    for root, prefix in ((home / "bucket", ""), (home / "models", "models/")):
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            s3.upload_file(str(path), "desk", prefix + path.relative_to(root).as_posix())
    try:
        yield env
    finally:
        server.stop()


def _with_s3(env: dict[str, str], *args: str, home: Path, cwd: Path) -> dict[str, object]:
    cwd.mkdir(parents=True, exist_ok=True)
    res = _algostack(*args, "--json", home=home, cwd=cwd, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    return dict(json.loads(res.stdout))


def test_s3_bucket_reads_equal_the_directory_for_data_list_replay_and_drift(
    home: Path, s3_env: dict[str, str], tmp_path: Path
) -> None:
    """``data list``, ``replay --archive`` and ``drift`` read the bucket on S3 exactly as they
    read the same bucket as a directory (drift with the models from the bucket itself)."""
    local = str(home / "bucket")
    no_s3 = {"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}  # the directory runs must not need S3

    s3_list = _with_s3(s3_env, "data", "list", "--bucket", "s3://desk", home=home, cwd=tmp_path)
    dir_list = _with_s3(no_s3, "data", "list", "--dir", local, home=home, cwd=tmp_path)
    assert s3_list["store"] == "s3://desk"
    assert s3_list["days"] == dir_list["days"]
    assert [d["complete"] for d in s3_list["days"]] == [True]

    def trades(*store: str, env: dict[str, str], where: str) -> list[dict[str, object]]:
        out = _with_s3(env, "replay", *store, "--day", DAY, "--models", str(home),
                       "--no-report", home=home, cwd=tmp_path / where)  # fmt: skip
        models: list[dict[str, object]] = out["models"]
        return [{k: v for k, v in m.items() if not k.startswith("latency")} for m in models]

    s3_replay = trades("--archive", "s3://desk", env=s3_env, where="replay-s3")
    assert s3_replay == trades("--archive", local, env=no_s3, where="replay-dir")
    assert len(s3_replay) == 4 and all(int(m["trades"]) > 0 for m in s3_replay)

    s3_drift = _with_s3(s3_env, "drift", "--day", DAY, "--bucket", "s3://desk",
                        home=home, cwd=tmp_path / "drift-s3")  # fmt: skip
    dir_drift = _with_s3(no_s3, "drift", "--day", DAY, "--dir", local, "--models", str(home),
                         home=home, cwd=tmp_path / "drift-dir")  # fmt: skip
    assert (s3_drift["bucket"], s3_drift["models_store"]) == ("s3://desk", "s3://desk")
    assert s3_drift["differences"] == 0
    assert s3_drift["models"] == dir_drift["models"]


def test_s3_bucket_that_does_not_exist_is_one_line_exit_2(
    home: Path, s3_env: dict[str, str], tmp_path: Path
) -> None:
    for args in (["data", "list", "--bucket", "s3://no-such-desk"],
                 ["replay", "--archive", "s3://no-such-desk", "--day", DAY,
                  "--models", str(home), "--no-report"],
                 ["drift", "--day", DAY, "--bucket", "s3://no-such-desk"]):  # fmt: skip
        res = _algostack(*args, home=home, cwd=tmp_path, env=s3_env)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        (line,) = res.stderr.strip().splitlines()
        assert "s3://no-such-desk" in line and "NoSuchBucket" in line, line
