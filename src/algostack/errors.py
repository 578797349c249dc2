"""One error hierarchy: retryable (network, rate limit), fatal (config, auth), bad input.

Every exception class in ``src/`` derives from exactly one of ``RetryableError``,
``FatalError`` and ``DataError``, by what it demands (``tests/unit/test_error_hierarchy.py``).
Adapters raise these at the edge; the one retrier (``core.backoff.retry_sync`` and
``retry_async``) retries only ``RetryableError``. Messages say what the user must do.
"""

from __future__ import annotations


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


class FileWriteError(FatalError):
    """A file could not be written (a full disk, a file-size limit, an I/O error); the message
    is one line naming the path and the OS error. What was there before is left as it was."""


class DataError(AlgostackError):
    """Input data (a frame, a file, an artifact, a venue report) is malformed or impossible;
    the message names it. Retrying the same input cannot help; skipping it may."""


def exit_code(exc: BaseException) -> int:
    """A command's exit code for ``exc``: 2 when the user's input is at fault (an option,
    a setting, a file: ``ConfigError``, ``DataError``), 1 for anything else."""
    return 2 if isinstance(exc, ConfigError | DataError) else 1
