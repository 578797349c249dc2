"""The one way a command reports its error: ``error: <message>`` on one line on stderr.

Plain text, not Rich markup (a message quoting ``[/x]`` from a user's file is printed as
it is, never a ``MarkupError``), folded to one line (a pipe or a CI log shows it whole),
secrets masked (``logs.redact``).
"""

from __future__ import annotations

import contextlib
from typing import Any


def print_error(message: object, console: Any = None) -> None:
    """Print ``error: <message>`` on ``console`` (default: a stderr console)."""
    from rich.console import Console
    from rich.text import Text

    from algostack.logs import redact

    out = console if console is not None else Console(stderr=True)
    line = " ".join(redact(str(message)).split())
    # stderr on a full disk (a service's log): nothing can carry the line, and the exit code
    # that follows must still be the command's own, not a traceback's 1
    with contextlib.suppress(OSError):
        out.print(Text.assemble(("error:", "bold red"), " ", line), highlight=False, soft_wrap=True)
