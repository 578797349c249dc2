"""The symbol list a source is asked for: each symbol checked, repeats dropped. Stdlib only."""

from __future__ import annotations

from collections.abc import Sequence

from algostack.core.market import validate_symbol

WILDCARD = "*"
"""Every symbol, where a source (Alpaca's stream) offers that."""


def unique_symbols(symbols: Sequence[str], *, wildcard: bool = False) -> list[str]:
    """``symbols`` in their order without repeats, each valid by ``validate_symbol`` (and
    ``*`` too when ``wildcard``); ``ValueError`` names the first bad one."""
    for s in symbols:
        if not (wildcard and s == WILDCARD):
            validate_symbol(s)
    return list(dict.fromkeys(symbols))
