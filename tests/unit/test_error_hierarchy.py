"""Every exception class defined in ``src/algostack`` says what it demands: it derives from
exactly one of ``RetryableError``, ``FatalError`` and ``DataError`` (errors.py's rule)."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import algostack
from algostack.errors import AlgostackError, DataError, FatalError, RetryableError

KINDS = (RetryableError, FatalError, DataError)
ROOTS = {AlgostackError, *KINDS}
PACKAGE = Path(algostack.__file__).parent


SCRIPTS = {"algostack.services.dashboard.app"}
"""Not imported: the Streamlit page runs the dashboard when imported (checked: no class)."""


def project_exceptions() -> list[type[BaseException]]:
    """Every exception class defined in a module of the package."""
    found: list[type[BaseException]] = []
    for info in pkgutil.walk_packages(algostack.__path__, "algostack."):
        if info.name in SCRIPTS:
            path = PACKAGE.joinpath(*info.name.split(".")[1:]).with_suffix(".py")
            assert not any(
                isinstance(n, ast.ClassDef) for n in ast.walk(ast.parse(path.read_text()))
            )
            continue
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == module.__name__
                and obj not in ROOTS
            ):
                found.append(obj)
    return found


def test_every_project_exception_is_exactly_one_of_retryable_fatal_or_data() -> None:
    classes = project_exceptions()
    assert len(classes) >= 10  # the walk found the package's errors, not nothing
    wrong = {
        f"{cls.__module__}.{cls.__qualname__}": [k.__name__ for k in KINDS if issubclass(cls, k)]
        for cls in classes
        if sum(issubclass(cls, k) for k in KINDS) != 1
    }
    assert wrong == {}


def test_the_rule_catches_an_unclassified_error() -> None:
    class Unclassified(AlgostackError):
        pass

    class Both(RetryableError, FatalError):
        pass

    assert [sum(issubclass(c, k) for k in KINDS) for c in (Unclassified, Both)] == [0, 2]


def test_service_exit_codes_say_whether_a_restart_can_help() -> None:
    import errno

    from algostack.adapters.nats.bus import NatsUnreachableError
    from algostack.adapters.nats.publisher import JetStreamStoreFullError, PublishError
    from algostack.errors import (
        AuthError,
        ConfigError,
        FileWriteError,
        exit_code,
        service_exit_code,
    )
    from algostack.services.journal import JournalWriteError

    bad_input = [ConfigError("x"), DataError("x")]
    hopeless = [
        FileWriteError("x"),
        JournalWriteError("x"),
        JetStreamStoreFullError("x"),
        PublishError("x"),
        AuthError("x"),
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EROFS, "Read-only file system"),
    ]
    curable = [NatsUnreachableError("x"), RetryableError("x"), OSError(errno.EIO, "x"), KeyError()]
    # a supervised service says whether a restart can help
    assert [service_exit_code(e) for e in bad_input] == [2] * len(bad_input)
    assert [service_exit_code(e) for e in hopeless] == [3] * len(hopeless)
    assert [service_exit_code(e) for e in curable] == [1] * len(curable)
    # a command run by hand: 2 for bad input, else 1
    assert [exit_code(e) for e in bad_input + hopeless + curable] == [2, 2] + [1] * (
        len(hopeless) + len(curable)
    )
