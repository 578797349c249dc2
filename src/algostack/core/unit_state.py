"""A systemd unit as ``systemctl show`` reports it: what a host's bootstrap waits on
(``services.node.readiness``) and what ``algostack fleet status`` reads from every host
(``control.status``). Stdlib only: the controllers' Lambda package carries it."""

from __future__ import annotations

from dataclasses import dataclass

SHOW_PROPERTIES = ("ActiveState", "SubState", "Result", "NRestarts", "Job")


@dataclass(frozen=True)
class UnitState:
    """A unit as ``systemctl show`` reports it."""

    active: str
    sub: str
    result: str = ""
    restarts: int = 0
    job: bool = False
    """A start/restart job is still queued or running."""
    unit: str = ""
    """``Id`` (when asked for)."""
    exit_status: str = ""
    """``ExecMainStatus``: the main process's last exit code (when asked for)."""

    @classmethod
    def parse(cls, text: str) -> UnitState:
        """Parse ``Key=value`` lines of ``systemctl show -p ...``."""
        props = dict(line.partition("=")[::2] for line in text.splitlines() if "=" in line)
        try:
            restarts = int(props.get("NRestarts") or 0)
        except ValueError:
            restarts = 0
        job = props.get("Job", "").strip()
        return cls(
            active=props.get("ActiveState", "unknown"),
            sub=props.get("SubState", "unknown"),
            result=props.get("Result", ""),
            restarts=restarts,
            job=bool(job) and job != "0",
            unit=props.get("Id", ""),
            exit_status=props.get("ExecMainStatus", ""),
        )

    @classmethod
    def parse_many(cls, text: str) -> list[UnitState]:
        """One ``UnitState`` per unit of ``systemctl show -p Id ... <pattern>`` (blocks of
        ``Key=value`` lines separated by a blank line); blocks without an ``Id`` are skipped."""
        states = [cls.parse(block) for block in text.strip().split("\n\n")]
        return [st for st in states if st.unit]

    def __str__(self) -> str:
        text = f"{self.active} ({self.sub})"
        if self.result and self.result != "success":
            text += f", result {self.result}"
        if self.restarts:
            text += f", restarted {self.restarts} time(s)"
        return text
