"""Settings: every field names its variable, the docs name exactly the variables there are, and
only entry points read the environment (docs/configuration.md)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from algostack.config import AlpacaSettings, NatsSettings, Settings
from algostack.control.config import ControlConfig
from algostack.services.dashboard.settings import DashboardSettings

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "algostack"
SETTINGS = (Settings, AlpacaSettings, NatsSettings, DashboardSettings)
VAR_RE = re.compile(r"\b(?:ALGOSTACK|APCA)_[A-Z0-9_]*[A-Z0-9]\b")
# Named in the docs, read only by tests and the AWS-day harness: not settings.
TEST_KNOBS = {"ALGOSTACK_SLOW", "ALGOSTACK_UPDATE_SCREENSHOT", "ALGOSTACK_TF_MIRROR"}
# The modules of src/ that may touch os.environ, and why.
ENV_READERS = {
    "control/config.py": "the Lambda's entry point: ControlConfig.from_env, once per cold start",
    "local/desk.py": "builds the environment of the session's child processes",
    "local/supervisor.py": "builds the environment of a child process",
    "services/dashboard/launch.py": "builds the environment of the Streamlit child",
    "services/node/readiness.py": "systemd's notify protocol: the manager hands the socket "
    "to the process in NOTIFY_SOCKET and its watchdog period in WATCHDOG_USEC/WATCHDOG_PID "
    "(what sd_notify(3) and sd_watchdog_enabled(3) read); not settings",
    "testing/aws/cloud.py": "test harness: sets moto's own option for its in-process server",
    "testing/aws/gitserver.py": "test harness: builds git's child environment",
    "testing/aws/host.py": "test harness: builds an emulated host's child environment",
    "testing/aws/terraform.py": "test harness: builds terraform's child environment and "
    "reads its test knob ALGOSTACK_TF_MIRROR",
}
# Where the settings are loaded: the entry points.
LOADERS = {"load_settings", "Settings", "AlpacaSettings", "NatsSettings", "DashboardSettings"}
ENTRY_POINTS = {"config.py", "services/dashboard/views.py", "control/handlers.py"}


def env_names(cls: type[BaseSettings]) -> dict[str, str]:
    """Field name -> its environment variable (nested settings classes left out)."""
    prefix = cls.model_config.get("env_prefix", "")
    out = {}
    for name, field in cls.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseSettings):
            continue
        alias = field.validation_alias
        assert alias is None or isinstance(alias, str), f"{cls.__name__}.{name}: one name only"
        out[name] = alias or (prefix + name).upper()
    return out


def setting_vars() -> set[str]:
    return {var for cls in SETTINGS for var in env_names(cls).values()}


class Recorder(Mapping[str, str]):
    """An environment that remembers which variables were asked for."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return self.values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


def lambda_vars() -> set[str]:
    env = Recorder({"ALGOSTACK_ENV": "qa"})
    ControlConfig.from_env(env)
    return {v for v in env.asked if VAR_RE.fullmatch(v)}


def documented_vars() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for var in VAR_RE.findall(path.read_text(encoding="utf-8")):
            found.setdefault(var, set()).add(path.relative_to(REPO).as_posix())
    return found


def src_modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(SRC.rglob("*.py")):
        yield path.relative_to(SRC).as_posix(), ast.parse(path.read_text(encoding="utf-8"))


def environ_uses(tree: ast.Module) -> list[int]:
    """Lines touching the process environment: ``os.environ``, ``os.getenv`` and kin."""
    names = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}
    os_names = {"os"}
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            os_names |= {a.asname or a.name for a in node.names if a.name == "os"}
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            lines += [node.lineno for a in node.names if a.name in names]
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in names
            and isinstance(node.value, ast.Name)
            and node.value.id in os_names
        ):
            lines.append(node.lineno)
    return sorted(lines)


def test_settings_every_field_docstring_names_its_variable() -> None:
    for cls in SETTINGS:
        for name, var in env_names(cls).items():
            description = cls.model_fields[name].description or ""
            assert description.startswith(f"``{var}``"), f"{cls.__name__}.{name}: say {var}"


def test_settings_classes_are_all_checked_here() -> None:
    declared = {
        node.name
        for _, tree in src_modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and any(isinstance(b, ast.Name) and b.id == "BaseSettings" for b in node.bases)
    }
    assert declared == {cls.__name__ for cls in SETTINGS}


def test_settings_variables_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    special = {"feed": "sip", "market_hours": "nyse", "history": "all", "live": "true"}
    for cls in SETTINGS:
        for name, var in env_names(cls).items():
            value = special.get(name, "7")
            monkeypatch.setenv(var, value)
            got = getattr(cls(), name)
            shown = got.get_secret_value() if hasattr(got, "get_secret_value") else got
            assert str(shown).lower() in {value, "7.0"}, f"{var} does not reach {name}"
            assert shown != cls.model_fields[name].default


def test_settings_docs_name_only_variables_that_exist() -> None:
    known = setting_vars() | lambda_vars() | TEST_KNOBS
    unknown = {var: where for var, where in documented_vars().items() if var not in known}
    assert not unknown, f"documented but read by nothing: {unknown}"


def test_settings_every_variable_is_documented() -> None:
    documented = set(documented_vars())
    assert not (setting_vars() | lambda_vars()) - documented


def test_settings_test_knobs_are_read_by_tests_only() -> None:
    assert not TEST_KNOBS & setting_vars()
    sources = [*(REPO / "tests").rglob("*.py"), *(SRC / "testing").rglob("*.py")]
    text = "\n".join(p.read_text(encoding="utf-8") for p in sources)
    for knob in TEST_KNOBS:
        assert knob in text, f"{knob} is read by nothing: drop it from the docs"


def test_settings_only_allowed_modules_touch_os_environ() -> None:
    readers = {mod: lines for mod, tree in src_modules() if (lines := environ_uses(tree))}
    outside = {mod: lines for mod, lines in readers.items() if mod not in ENV_READERS}
    assert not outside, f"read settings at the entry point instead: {outside}"
    assert set(ENV_READERS) <= set(readers), "stale ENV_READERS entries"


def test_settings_loaded_only_at_entry_points() -> None:
    callers = set()
    for mod, tree in src_modules():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name in LOADERS or name == "from_env":
                callers.add(mod)
    outside = {m for m in callers - ENTRY_POINTS if not m.startswith(("commands/", "testing/"))}
    assert not outside, f"settings loaded below the entry point in {sorted(outside)}"


def test_environ_uses_finds_reads_through_any_spelling() -> None:
    sample = ast.parse(
        "import os as o\nfrom os import getenv\nx = o.environ.get('A')\ny = getenv('B')\n"
        "z = dict(o.environ)\nw = config.environ\n"
    )
    assert environ_uses(sample) == [2, 3, 5]
