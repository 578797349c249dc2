"""No two modules in src/algostack share a file name, except the parallel roles that
docs/architecture.md ("Module names") lists."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "algostack"

PARALLEL = {
    "drift.py": {"commands/drift.py", "local/drift.py"},
    "config.py": {"config.py", "control/config.py", "services/node/config.py"},
    "service.py": {"services/gateway/service.py", "services/trader/service.py"},
    "state.py": {"services/gateway/state.py", "services/trader/state.py"},
    "ingest.py": {"commands/ingest.py", "services/ingest.py"},
    "replay.py": {"commands/replay.py", "local/replay.py"},
    "sync.py": {"commands/sync.py", "services/sync.py"},
}
"""The command line of ``algostack <name>`` beside what it runs; each service's main class
and persisted state; each deployable part's settings."""


def test_module_names_are_unique_but_for_the_documented_parallel_roles() -> None:
    by_name: dict[str, set[str]] = defaultdict(set)
    for path in SRC.rglob("*.py"):
        if path.name != "__init__.py":
            by_name[path.name].add(path.relative_to(SRC).as_posix())
    shared = {name: paths for name, paths in by_name.items() if len(paths) > 1}
    assert shared == PARALLEL


def test_the_parallel_roles_are_the_ones_the_architecture_doc_names() -> None:
    doc = (SRC.parents[1] / "docs" / "architecture.md").read_text()
    section = doc.split("## Module names", 1)[1].split("\n## ", 1)[0]
    for paths in PARALLEL.values():
        for path in paths:
            assert f"`{path}`" in section or f"`{path.split('/')[-1]}`" in section, path
