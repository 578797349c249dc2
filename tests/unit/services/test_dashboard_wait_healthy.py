"""``wait_healthy``: polls Streamlit's health URL through the retrier until it answers, the
child exits, or the time is up."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from algostack.errors import FatalError
from algostack.services.dashboard.launch import wait_healthy


class Child:
    """The part of ``Popen`` ``wait_healthy`` reads."""

    def __init__(self, returncode: int | None = None) -> None:
        self.returncode = returncode

    def poll(self) -> int | None:
        return self.returncode


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/_stcore/health" else 404)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def healthy_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_wait_healthy_returns_once_the_health_url_answers(healthy_port: int) -> None:
    t = FakeTime()
    wait_healthy(Child(), "localhost", healthy_port, sleep=t.sleep, clock=t.clock)  # type: ignore[arg-type]
    assert t.slept == []


def test_wait_healthy_polls_until_the_time_is_up_then_fails() -> None:
    t = FakeTime()
    with pytest.raises(FatalError, match=r"not healthy at http://127\.0\.0\.1:\d+/_stcore/health"):
        wait_healthy(Child(), "0.0.0.0", closed_port(), timeout_s=1.0, sleep=t.sleep, clock=t.clock)  # type: ignore[arg-type]
    assert len(t.slept) >= 4 and set(t.slept) == {0.2} and t.now <= 1.0 + 1e-9


def test_wait_healthy_fails_at_once_when_the_child_exited() -> None:
    t = FakeTime()
    with pytest.raises(FatalError, match="exited with code 3 before serving"):
        wait_healthy(Child(3), "127.0.0.1", closed_port(), sleep=t.sleep, clock=t.clock)  # type: ignore[arg-type]
    assert t.slept == []
