"""relay.procinfo, the one reader of /proc: facts about a process that other modules act on."""

import shutil
import subprocess
from pathlib import Path

import pytest
from test_liveness import wait_for

from relay import procinfo

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
