"""One retrier: no function in ``src/`` outside ``core/backoff.py`` contains its own retry loop.

A *retry loop* is a ``while``/``for`` loop (the bodies of functions and classes nested in it
not counted) that both

- waits: calls a sleep function (a name ending in ``sleep``, as ``time.sleep``,
  ``asyncio.sleep``, ``self._sleep``, ``runtime.sleep``; or ``sleep_unless``), other than
  ``sleep(0)``, which only lets the event loop run; and
- goes round again after a failure: it draws a delay from a backoff (``.next_delay()``), or
  it has a ``try`` with an ``except`` handler that can fall through or ``continue`` (one that
  always ends in ``raise``, ``return`` or ``break`` gives up instead).

Two kinds of loop wait and recover yet are not retries (docs/architecture.md, "Retries"):

- a *supervision loop* keeps a long-lived connection up until it is told to stop:
  ``while not E.is_set():`` where every wait is ``sleep_unless(E, ...)``, cut short by ``E``;
- a *periodic task* runs forever at its own period: ``while True:`` with no ``break`` or
  ``return`` in it, so no success ends it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "algostack"
RETRIER = SRC / "core" / "backoff.py"

_NESTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_LOOPS = (ast.While, ast.For, ast.AsyncFor)
_LEAVE = (ast.Raise, ast.Return, ast.Break)


def _inside(node: ast.AST) -> list[ast.AST]:
    """Every node under ``node``, not descending into nested functions and classes."""
    out: list[ast.AST] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, _NESTED):
            continue
        out.append(child)
        out.extend(_inside(child))
    return out


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _is_wait(call: ast.Call) -> bool:
    name = _name(call.func)
    if not (name.lower().endswith("sleep") or name == "sleep_unless"):
        return False
    args = call.args[1:] if name == "sleep_unless" else call.args
    return not (args and isinstance(args[0], ast.Constant) and args[0].value == 0)


def _goes_round(handler: ast.ExceptHandler) -> bool:
    if any(isinstance(n, ast.Continue) for n in _inside(handler)):
        return True
    return not isinstance(handler.body[-1], _LEAVE)


def _is_supervision(loop: ast.AST, waits: list[ast.Call]) -> bool:
    if not isinstance(loop, ast.While):
        return False
    test = loop.test
    if not (
        isinstance(test, ast.UnaryOp)
        and isinstance(test.op, ast.Not)
        and isinstance(test.operand, ast.Call)
        and _name(test.operand.func) == "is_set"
        and isinstance(test.operand.func, ast.Attribute)
    ):
        return False
    stop = ast.dump(test.operand.func.value)
    return all(
        _name(w.func) == "sleep_unless" and w.args and ast.dump(w.args[0]) == stop for w in waits
    )


def _is_periodic(loop: ast.AST, body: list[ast.AST]) -> bool:
    return (
        isinstance(loop, ast.While)
        and isinstance(loop.test, ast.Constant)
        and loop.test.value is True
        and not any(isinstance(n, (ast.Break, ast.Return)) for n in body)
    )


def retry_loops(source: str) -> list[int]:
    """Line numbers of the retry loops in ``source`` (the rule of this module's docstring)."""
    found = []
    for loop in ast.walk(ast.parse(source)):
        if not isinstance(loop, _LOOPS):
            continue
        body = _inside(loop)
        waits = [n for n in body if isinstance(n, ast.Call) and _is_wait(n)]
        if not waits:
            continue
        backoff = any(isinstance(n, ast.Call) and _name(n.func) == "next_delay" for n in body)
        recovers = any(
            isinstance(n, ast.Try) and any(_goes_round(h) for h in n.handlers) for n in body
        )
        if not (backoff or recovers):
            continue
        if _is_supervision(loop, waits) or _is_periodic(loop, body):
            continue
        found.append(loop.lineno)
    return found


def test_no_function_in_src_has_its_own_retry_loop() -> None:
    offenders = {
        f"{path.relative_to(SRC)}:{line}"
        for path in sorted(SRC.rglob("*.py"))
        if path != RETRIER
        for line in retry_loops(path.read_text())
    }
    assert offenders == set(), "retry through core.backoff.retry_sync/retry_async instead"


def test_the_check_reads_the_retrier_itself_as_a_retry_loop() -> None:
    assert retry_loops(RETRIER.read_text()), "the rule no longer sees a retry loop"


FLAGGED = {
    "sleep in the handler": """
def fetch(client):
    while True:
        try:
            return client.get()
        except OSError:
            time.sleep(1.0)
""",
    "continue after sleeping, async": """
async def fetch(client, sleep):
    for attempt in range(5):
        try:
            data = await client.get()
        except TimeoutError:
            await sleep(0.5 * attempt)
            continue
        break
""",
    "a poll on a backoff": """
def wait(check, backoff, runtime):
    while not check():
        runtime.sleep(backoff.next_delay())
""",
    "a stop event, but a plain sleep": """
async def run(self):
    while not self._stop.is_set():
        try:
            await self._session()
        except OSError:
            pass
        await asyncio.sleep(1.0)
""",
}

NOT_FLAGGED = {
    "gives up in the handler": """
def once(client):
    while True:
        try:
            return client.get()
        except OSError:
            raise
        finally:
            time.sleep(1.0)
""",
    "yields to the loop": """
async def drain(queue):
    while queue:
        try:
            handle(queue.pop())
        except ValueError:
            pass
        await asyncio.sleep(0)
""",
    "supervision": """
async def run(self):
    while not self._stopped.is_set():
        try:
            await self._session()
        except OSError:
            pass
        if await sleep_unless(self._stopped, self._backoff.next_delay(), self._sleep):
            break
""",
    "periodic task": """
async def every(self):
    while True:
        try:
            await self.scan()
        except OSError as exc:
            log.error(exc)
        await asyncio.sleep(30.0)
""",
    "the wait in a nested function": """
def outer(items):
    for item in items:
        try:
            item.run()
        except OSError:
            pass

        def later():
            time.sleep(1.0)
""",
}


@pytest.mark.parametrize("name", sorted(FLAGGED))
def test_the_check_flags_a_hand_written_retry_loop(name: str) -> None:
    assert retry_loops(FLAGGED[name]) == [3]


@pytest.mark.parametrize("name", sorted(NOT_FLAGGED))
def test_the_check_passes_loops_that_are_not_retries(name: str) -> None:
    assert retry_loops(NOT_FLAGGED[name]) == []


def test_the_check_flags_a_loop_written_in_a_file(tmp_path: Path) -> None:
    path = tmp_path / "client.py"
    path.write_text(FLAGGED["sleep in the handler"])
    assert retry_loops(path.read_text()) == [3]
