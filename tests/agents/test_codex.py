"""How the bus learns its Codex session: from a tool call's `_meta`, else from its Codex ancestor.

The ancestry tests build a real process tree: a shell renamed `codex` (so its executable's name is
what the real Codex CLI's is) holds a rollout file open, like Codex does, and runs Python as its
child. The macOS path (no /proc: `ps` and `lsof`) is checked with their recorded output formats.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from relay.agents import codex, codex_session
from relay.host import procinfo

SESSION = "01a20ac4-c162-73e0-9a27-27cf0166dbc6"
OTHER = "01a20ac5-0000-7000-8000-000000000001"

needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


# ------------------------------------------------------------------ _meta


def test_meta_session_id_in_the_order_codex_sends_it() -> None:
    turn = {"session_id": OTHER, "thread_id": OTHER}
    assert codex.id_from_meta({"sessionId": SESSION, "threadId": OTHER}) == SESSION
    assert codex.id_from_meta({"threadId": SESSION, "x-codex-turn-metadata": turn}) == SESSION
    assert codex.id_from_meta({"x-codex-turn-metadata": {"session_id": SESSION}}) == SESSION
    assert codex.id_from_meta({"x-codex-turn-metadata": {"thread_id": SESSION}}) == SESSION


@pytest.mark.parametrize(
    "meta",
    [None, "x", [], {}, {"sessionId": "--config=evil"}, {"sessionId": 7}, {"x-codex-turn-metadata": "s"}],
)
def test_meta_without_a_uuid_names_nobody(meta: object) -> None:
    assert codex.id_from_meta(meta) is None


def test_planted_non_uuid_falls_through_to_the_next_field() -> None:
    assert codex.id_from_meta({"sessionId": "../../etc", "threadId": SESSION}) == SESSION


def test_resolve_prefers_the_call_meta(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codex_session, "_codex_of", lambda pid: None)
    found = codex.resolve({"sessionId": SESSION})
    assert found == codex.CodexSession(SESSION, None, "Codex tools/call _meta.sessionId")
    assert codex.resolve(None) is None


# ------------------------------------------------------------------ a real process tree (Linux)


def _rollout(root: Path, session: str, cwd: str, source: object = "exec") -> Path:
    path = root / "sessions" / "2026" / "11" / "23" / f"rollout-2026-11-23T23-33-16-{session}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"type": "session_meta", "payload": {"id": session, "cwd": cwd, "source": source}}
    path.write_text(json.dumps(meta) + "\n")
    return path


PROBE = """
import json
from relay.agents import codex
from relay.host import procinfo
found = codex.from_ancestor()
anc = codex.codex_ancestor()
print(json.dumps({"found": found and [found.session_id, found.cwd], "ancestor": anc and anc.name}))
"""


def _under_fake_codex(tmp_path: Path, open_files: list[Path], **extra_env: str) -> dict:
    """Run PROBE as the child of a shell named `codex` that holds `open_files` open."""
    fake = tmp_path / "bin" / "codex"
    fake.parent.mkdir(exist_ok=True)
    shutil.copy("/bin/sh", fake)
    redirects = " ".join(f"{3 + i}<'{path}'" for i, path in enumerate(open_files))
    # `; exit` keeps the shell alive as the parent (a lone last command may be exec'd in place).
    script = (
        f'exec {redirects}\n"{sys.executable}" -c "$PROBE"; exit $?'
        if redirects
        else f'"{sys.executable}" -c "$PROBE"; exit $?'
    )
    env = {name: value for name, value in os.environ.items() if name != "RELAY_NO_ANCESTRY"}
    env.update(PROBE=PROBE, PYTHONPATH=str(Path(__file__).resolve().parents[2]), **extra_env)
    done = subprocess.run([str(fake), "-c", script], env=env, capture_output=True, check=False, timeout=30)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


@needs_proc
def test_ancestor_codex_holding_one_rollout_names_the_session(tmp_path: Path) -> None:
    project = tmp_path / "project"
    result = _under_fake_codex(tmp_path, [_rollout(tmp_path, SESSION, str(project))])
    assert result == {"found": [SESSION, str(project)], "ancestor": "codex"}


@needs_proc
def test_writer_lock_alone_names_the_session_and_the_cwd_comes_from_the_process(tmp_path: Path) -> None:
    lock = tmp_path / "thread-writer-locks" / f"{SESSION}.lock"
    lock.parent.mkdir()
    lock.write_text("")
    result = _under_fake_codex(tmp_path, [lock])
    assert result["found"] == [SESSION, os.getcwd()]


@needs_proc
def test_a_sub_agent_rollout_does_not_make_it_ambiguous(tmp_path: Path) -> None:
    main = _rollout(tmp_path, SESSION, "/main")
    sub = _rollout(tmp_path, OTHER, "/main", source={"subagent": {"parent_thread_id": SESSION}})
    assert _under_fake_codex(tmp_path, [main, sub])["found"] == [SESSION, "/main"]


@needs_proc
def test_ancestry_can_be_turned_off(tmp_path: Path) -> None:
    result = _under_fake_codex(tmp_path, [_rollout(tmp_path, SESSION, "/p")], RELAY_NO_ANCESTRY="1")
    assert result["found"] is None


@needs_proc
def test_two_sessions_open_is_ambiguous_so_no_guess(tmp_path: Path) -> None:
    files = [_rollout(tmp_path, SESSION, "/a"), _rollout(tmp_path, OTHER, "/b")]
    assert _under_fake_codex(tmp_path, files)["found"] is None


@needs_proc
def test_ancestors_start_at_the_parent() -> None:
    me = procinfo.process_info(os.getpid())
    assert me is not None and me.ppid == os.getppid()
    assert [p.pid for p in procinfo.ancestors()][:1] == [os.getppid()]


def test_is_codex_matches_the_native_binary_not_the_node_wrapper() -> None:
    def named(name: str) -> procinfo.ProcInfo:
        return procinfo.ProcInfo(pid=2, ppid=1, start="1", name=name)

    assert codex.is_codex(named("codex"))
    assert codex.is_codex(named("codex-x86_64-unknown-linux-musl"))
    assert codex.is_codex(named("codex-aarch64-apple-darwin"))
    assert not codex.is_codex(named("node"))
    assert not codex.is_codex(named("codex-helper"))
    assert not codex.is_codex(named("claude"))


# ------------------------------------------------------------------ macOS: ps and lsof


def test_macos_fallbacks_parse_ps_and_lsof(monkeypatch: pytest.MonkeyPatch) -> None:
    outputs = {
        ("ps",): "  412 Mon Nov 23 23:33:16 2026     /opt/homebrew/bin/codex\n",
        ("lsof", "cwd"): "p413\nfcwd\nn/Users/me/src/api\n",
        ("lsof",): (
            "p413\nfcwd\nn/Users/me/src/api\nf3\n"
            f"n/Users/me/.codex/sessions/2026/11/23/rollout-2026-11-23T23-33-16-{SESSION}.jsonl\n"
            "f4\nn/dev/null\n"
        ),
    }

    def fake_run(argv: list[str]) -> str | None:
        if argv[0] == "ps":
            return outputs[("ps",)]
        if argv[0] == "lsof":
            return outputs[("lsof", "cwd")] if "cwd" in argv else outputs[("lsof",)]
        return None

    monkeypatch.setattr(procinfo, "_has_proc", lambda: False)
    monkeypatch.setattr(procinfo, "_run", fake_run)
    info = procinfo.process_info(413)
    assert info == procinfo.ProcInfo(pid=413, ppid=412, start="Mon Nov 23 23:33:16 2026", name="codex")
    assert procinfo.process_cwd(413) == "/Users/me/src/api"
    assert SESSION in codex.open_sessions(413)
    assert "/dev/null" in procinfo.open_files(413)


def test_macos_fallbacks_answer_none_when_the_tools_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(procinfo, "_has_proc", lambda: False)
    monkeypatch.setattr(procinfo, "_run", lambda argv: None)
    assert procinfo.process_info(413) is None
    assert procinfo.process_cwd(413) is None
    assert procinfo.open_files(413) == []
    assert procinfo.ancestors(413) == []
