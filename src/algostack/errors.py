"""One error hierarchy: retryable (network, rate limit), fatal (config, auth), bad input.

Every exception class in ``src/`` derives from exactly one of ``RetryableError``,
``FatalError`` and ``DataError``, by what it demands (``tests/unit/test_error_hierarchy.py``).
Adapters raise these at the edge; the one retrier (``core.backoff.retry_sync`` and
``retry_async``) retries only ``RetryableError``. Messages say what the user must do.
"""

from __future__ import annotations

import errno


class AlgostackError(Exception):
    """Base of every error algostack raises on purpose."""


class RetryableError(AlgostackError):
    """A transient failure: trying again later may succeed (network, rate limit, 5xx)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FatalError(AlgostackError):
    """A failure that retrying cannot fix: configuration, credentials, permissions."""


class ConfigError(FatalError):
    """Invalid or missing configuration, detected before connecting to anything."""


class AuthError(FatalError):
    """Credentials were refused or lack the needed subscription or scope."""


class ResourceError(FatalError):
    """Something the process needs is exhausted or refuses to store (a full disk, a full or
    silent JetStream store): a restart of the process cannot help until someone frees or fixes
    it. Services exit ``EXIT_NO_RESTART`` for it, so no supervisor restarts them in a loop."""


class FileWriteError(ResourceError):
    """A file could not be written (a full disk, a file-size limit, an I/O error); the message
    is one line naming the path and the OS error. What was there before is left as it was."""


class DataError(AlgostackError):
    """Input data (a frame, a file, an artifact, a venue report) is malformed or impossible;
    the message names it. Retrying the same input cannot help; skipping it may."""


EXIT_FAILED = 1
"""A runtime failure a restart may cure (NATS unreachable, a crash): supervisors restart."""
EXIT_BAD_INPUT = 2
"""The user's input is at fault (an option, a setting, a file): fixed by the user."""
EXIT_NO_RESTART = 3
"""A service's failure a restart cannot cure (a full disk or JetStream store, refused
credentials: ``service_exit_code``): the local run's supervisor and systemd
(``RestartPreventExitStatus``) leave the component failed."""

_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


def exit_code(exc: BaseException) -> int:
    """A command's exit code for ``exc``: ``EXIT_BAD_INPUT`` (2) for ``ConfigError`` and
    ``DataError``, ``EXIT_FAILED`` (1) for anything else."""
    return EXIT_BAD_INPUT if isinstance(exc, ConfigError | DataError) else EXIT_FAILED


def service_exit_code(exc: BaseException) -> int:
    """A supervised service's exit code (``trade``, ``ingest``, ``gateway``): as
    ``exit_code``, but ``EXIT_NO_RESTART`` (3) for ``ResourceError``, ``AuthError`` and an OS
    error of a full or read-only disk, so its supervisor does not restart it into the same
    failure. Commands a user runs by hand keep 1 for these."""
    if isinstance(exc, ResourceError | AuthError):
        return EXIT_NO_RESTART
    if isinstance(exc, OSError) and exc.errno in _NO_ROOM:
        return EXIT_NO_RESTART
    return exit_code(exc)
