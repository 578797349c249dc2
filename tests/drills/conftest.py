"""The drills: ``algostack run`` as a user runs it, hurt from outside (signals, a full disk,
bad input), each case bounded and compared with one undisturbed run of the same day and seed.

Every test in this directory carries the ``drills`` marker (``make drills`` runs only them).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from drill_kit import DAY, Outcome, Run, copy_models  # beside the drills (rootdir on sys.path)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every drill (the marker selects the suite: ``pytest -m drills``)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.drills)


@pytest.fixture(scope="session")
def models_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home holding the demo models, trained once for every drill."""
    from datetime import date

    from algostack.local.demo_models import ensure_demo_models

    home = tmp_path_factory.mktemp("models-home")
    ensure_demo_models(home, seed=7, before=date.fromisoformat(DAY))
    return home


@pytest.fixture(scope="session")
def undisturbed(models_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    """The run every recoverable drill must equal: same day, seed, pace and models."""
    home = copy_models(models_home, tmp_path_factory.mktemp("undisturbed"))
    run = Run(home)
    try:
        outcome = run.finish()
    finally:
        run.close()
    assert outcome.code == 0, outcome.stderr[-2000:]
    yield outcome
