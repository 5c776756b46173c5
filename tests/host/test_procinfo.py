"""relay.host.procinfo, the one reader of /proc: facts about a process that other modules act on."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from test_liveness import wait_for

from relay.agents import codex
from relay.host import procinfo

needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


@needs_proc
def test_is_zombie_only_for_an_ended_unreaped_process(tmp_path: Path) -> None:
    running = subprocess.Popen(["sleep", "30"])
    ended = subprocess.Popen(["true"])
    try:
        assert not procinfo.is_zombie(running.pid)
        # ended and not yet reaped: a pid and a start time, but nothing runs
        assert wait_for(lambda: procinfo.is_zombie(ended.pid))
        assert procinfo.process_info(ended.pid) is not None
        ended.wait()
        assert not procinfo.is_zombie(ended.pid)  # reaped: gone
    finally:
        running.kill()
        running.wait()


@needs_proc
def test_a_name_holding_a_parenthesis_and_z_is_not_read_as_the_state(tmp_path: Path) -> None:
    """comm may hold ") Z ": the state is the field after the LAST ')'."""
    sleeper = tmp_path / "a) Z (b"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", sleeper)
    proc = subprocess.Popen([str(sleeper), "30"])
    try:
        assert wait_for(
            lambda: (procinfo.process_info(proc.pid) or procinfo.ProcInfo(0, 0, "", "")).name == sleeper.name
        )
        assert not procinfo.is_zombie(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def test_no_such_process_is_no_zombie() -> None:
    assert not procinfo.is_zombie(2**22 + 12345)  # above Linux's pid_max: never a process


@needs_proc
def test_codex_pids_lists_running_codex_processes(tmp_path: Path) -> None:
    program = tmp_path / "codex"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", program)
    proc = subprocess.Popen([str(program), "30"])
    try:
        assert wait_for(lambda: proc.pid in codex.codex_pids())
        assert os.getpid() not in codex.codex_pids()
    finally:
        proc.kill()
        proc.wait()
    assert proc.pid not in codex.codex_pids()


def test_codex_pids_from_ps_where_there_is_no_proc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """macOS: `ps -A -o pid= -o comm=` (comm is the executable's path there)."""
    listing = "  412 /opt/homebrew/bin/codex\n  413 /usr/bin/node\n 7001 /tmp/codex-aarch64-apple-darwin\nnot a pid\n"
    monkeypatch.setattr(procinfo, "_PROC", str(tmp_path / "no-proc"))
    monkeypatch.setattr(procinfo, "_run", lambda argv: listing if argv[:2] == ["ps", "-A"] else None)
    assert codex.codex_pids() == [412, 7001]
    monkeypatch.setattr(procinfo, "_run", lambda argv: None)  # no ps: nobody
    assert codex.codex_pids() == []


@needs_proc
def test_title_is_the_name_a_process_gives_itself() -> None:
    assert procinfo.title(os.getpid()) == Path("/proc/self/comm").read_text().strip()
    assert procinfo.title(2**22 + 12345) is None
