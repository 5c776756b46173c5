"""What every agent CLI's adapter module provides: the registry (relay.agents.adapter) is typed
with this Protocol, so mypy rejects an adapter that lacks one of these names or gets a signature
wrong. Typing only: nothing imports this module at run time. An adapter module lists no `__all__`: mypy
would then see only the names listed there.
"""

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Protocol

from relay.store.contract import StoreAPI

# One line of `relay doctor`: (PASS|WARN|FAIL, what was checked, the command that fixes it or "").
Finding = tuple[str, str, str]


class Adapter(Protocol):
    """One agent CLI, as relay's hook, discover, gc, wake and doctor need it."""

    @property
    def NAME(self) -> str:
        """The CLI's `tool` in the registry (relay.domain.ids.AGENT_CLIS) and in `relay hook <tool>`."""

    @property
    def ANSWER_NOTE(self) -> str | None:
        """What a model of this CLI must be told where it reads how to answer mail, beside relay's
        `send` (None: nothing)."""

    @property
    def EVENTS(self) -> Mapping[str, str]:
        """The CLI's hook event name -> relay's moment (SessionStart, ..., SessionEnd)."""

    def hook_output(self, moment: str, text: str) -> dict[str, object]:
        """The hook's answer that puts `text` in front of the model at `moment`."""

    def wake_argv(self, session_id: str, prompt: str) -> list[str]:
        """The argv that resumes `session_id` headless with `prompt` as its one input."""

    def recent_sessions(self, since: float) -> Iterator[tuple[str | None, str | None, float]]:
        """(id as written, cwd, last activity) of each session whose transcript changed since `since`."""

    def transcript_times(self) -> Iterator[tuple[str, float]]:
        """(id as written, mtime) of every transcript on this machine."""

    def live_sessions(self) -> set[str]:
        """Ids (lower case) of every session of this CLI running now."""

    def is_live(self, session_id: str) -> bool:
        """Does a running process of this CLI have `session_id` (lower case) open?"""

    def doctor_findings(self, store: StoreAPI, root: Path | None) -> list[Finding]:
        """`relay doctor`'s checks of this CLI's install: is the plugin installed, allowed and the
        copy in `root` (the checkout relay runs from, None without one)?"""
