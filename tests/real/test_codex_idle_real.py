"""An open, idle Codex TUI gets mail with nobody typing (docs/delivery.md), offline.

The real interactive `codex` (0.169 and 0.171) runs in a pseudo-terminal with the plugin installed and its hooks
trusted, against a mock Responses API; its first prompt is typed, then it sits idle. `relay send`
to it must start a turn in that very session through `codex queue` (relay.usecases.codex_queue): the mock's
next request of that thread carries relay's fixed nudge and, from the UserPromptSubmit hook, the
fenced mail, exactly once; the mailbox is empty afterwards; nobody typed.

Run as a script (inside `unshare -n`), this file is the driver: spec on stdin, JSON report on stdout.
"""

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import realclients as rc

pytestmark = pytest.mark.real_clients

NUDGE_START = "You have session-relay mail."


# ---------------------------------------------------------------- the driver, inside the namespace


class _Tui:
    """The interactive codex in a pty; its output is drained all the time (a full pty blocks it)."""

    def __init__(self, argv: list[str], cwd: str, env: dict[str, str]) -> None:
        import fcntl
        import pty
        import struct
        import termios

        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.chdir(cwd)
            os.execve(argv[0], argv, {**env, "TERM": "xterm-256color"})
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
        self.raw = b""

    def pump(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    self.raw += os.read(self.fd, 65536)
                except OSError:
                    return

    def screen(self) -> str:
        return rc._screen_text(self.raw[-20000:])

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())
        self.pump(0.5)
        os.write(self.fd, b"\r")

    def kill(self) -> None:
        os.kill(self.pid, 9)
        os.waitpid(self.pid, 0)
        os.close(self.fd)


def _rollout(codex_home: Path) -> Path | None:
    found = sorted((codex_home / "sessions").rglob("rollout-*.jsonl"))
    return found[0] if found else None


def _turns_done(rollout: Path | None) -> int:
    if rollout is None or not rollout.exists():
        return 0
    return rollout.read_bytes().count(b'"type":"task_complete"')


def _drive(spec: dict[str, Any]) -> dict[str, Any]:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    mock = rc._Mock(rc.ResponsesHandler, rc.MOCK_PORT)
    mock.js, mock.script = None, None
    mock.start()
    seen: list[float] = []  # when each mock request was first seen (monotonic)
    tui = _Tui(spec["codex"], spec["cwd"], dict(os.environ))
    codex_home = Path(os.environ["CODEX_HOME"])
    report: dict[str, Any] = {}

    def wait(done: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            tui.pump(0.02)
            with mock.lock:
                seen.extend([time.monotonic()] * (len(mock.requests) - len(seen)))
            if done():
                return True
        return False

    try:
        report["ready"] = wait(lambda: "Ask Codex to do anything" in tui.screen(), 60)
        tui.pump(1.0)
        tui.type(spec["prompt"])
        report["first_turn"] = wait(lambda: _turns_done(_rollout(codex_home)) >= 1, 60)
        tui.pump(2.0)  # let Codex's side calls (title generation) finish: the session is idle now
        rollout = _rollout(codex_home)
        report["session"] = sorted(rc.codex_rollouts(rc.Sandbox(Path(spec["sandbox"]))))
        argv = [report["session"][0] if word == "SESSION" else word for word in spec["send"]]
        before, turns = len(mock.requests), _turns_done(rollout)
        report["before"] = before
        started = time.monotonic()
        send = subprocess.Popen(argv, cwd=spec["cwd"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait(lambda: send.poll() is not None, 30)
        out, err = send.communicate(timeout=5)
        report["send"] = {
            "rc": send.returncode,
            "stdout": out.decode(errors="replace"),
            "stderr": err.decode(errors="replace"),
            "seconds": time.monotonic() - started,
        }
        report["nudged_turn"] = wait(lambda: _turns_done(rollout) > turns, 30)
        wait(lambda: False, 3.0)  # any second (unwanted) turn would start within this
        report["turns_after"] = _turns_done(rollout) - turns
        report["requests"] = [
            {"at": at - started, **request} for at, request in zip(seen, mock.requests[: len(seen)], strict=True)
        ]
    finally:
        report["screen"] = tui.screen()[-3000:]
        tui.kill()
        mock.shutdown()
        rc.Sandbox(Path(spec["sandbox"])).stop_leftovers()  # the app-server daemon the TUI started
    return report


# ---------------------------------------------------------------- the test


def _codex(sandbox: rc.Sandbox, *args: str) -> None:
    done = rc.offline([str(rc.clients_bin() / "codex"), *args], sandbox.env(), sandbox.project)
    assert done.returncode == 0, done.stderr.decode()


def _new_items(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The input items the model had not seen: after its last message or tool call."""
    items = [item for item in request.get("input", []) if isinstance(item, dict)]
    spoke = [
        i for i, item in enumerate(items) if item.get("role") == "assistant" or item.get("type", "").endswith("_call")
    ]
    return items[spoke[-1] + 1 :] if spoke else items


def _texts(items: list[dict[str, Any]], role: str) -> list[str]:
    return [
        part.get("text", "")
        for item in items
        if item.get("role") == role
        for part in item.get("content", [])
        if isinstance(part, dict)
    ]


@pytest.mark.parametrize("options", [[], ["--no-daemon"]], ids=["daemon", "no-daemon"])
def test_idle_codex_tui_gets_mail_with_nobody_typing(tmp_path: Path, sandbox: rc.Sandbox, options: list[str]) -> None:
    """The default TUI (a client of the shared app-server daemon, which holds the session) and a
    `--no-daemon` TUI (which hosts it itself and polls its queue, every ~10 s)."""
    rc.skip_unless_runnable("codex")
    plugin = rc.plugin_under_test(tmp_path / "plugin")
    _codex(sandbox, "plugin", "marketplace", "add", str(plugin))
    _codex(sandbox, "plugin", "add", "session-relay@session-relay")
    config = sandbox.codex_home / "config.toml"
    config.write_text(
        rc.codex_mock_config()
        + '\napproval_policy = "never"\nsandbox_mode = "danger-full-access"\n'
        + f'\n[projects."{sandbox.project}"]\ntrust_level = "trusted"\n\n'
        + config.read_text()
    )
    trust = {"kind": "codex-tui-trust", "cwd": str(sandbox.project), "config": str(config)}
    [trusted] = rc.scenario(
        {"steps": [{**trust, "argv": [str(rc.clients_bin() / "codex")]}]}, sandbox.env(), sandbox.project
    )["steps"]
    assert trusted["trusted"], trusted["screen"]
    sandbox.stop_leftovers()  # the daemon read the hooks before they were trusted: start afresh

    body = f"idle-mail-{os.urandom(6).hex()}"
    spec = {
        "sandbox": str(sandbox.root),
        "cwd": str(sandbox.project),
        "codex": [str(rc.clients_bin() / "codex"), *options],
        "prompt": "first prompt",
        "send": [str(plugin / "launcher"), "send", "SESSION", "--", body],
    }
    # The session id is known only once the TUI made it: the driver fills it in.
    report = _run_driver(spec, sandbox)
    assert report["ready"] and report["first_turn"], report["screen"]
    [session] = report["session"]
    send = report["send"]
    assert send["rc"] == 0 and send["stdout"].startswith("queued -> "), send
    assert send["stderr"] == "", send  # no note: the nudge went through
    assert report["nudged_turn"], report["screen"]
    assert report["turns_after"] == 1, report["screen"]  # one nudge, one turn

    after = report["requests"][report["before"] :]
    thread = [r for r in after if r["body"].get("prompt_cache_key") == session]
    assert len(thread) == 1, [r["body"].get("prompt_cache_key") for r in after]
    new = _new_items(thread[0]["body"])
    users = _texts(new, "user")
    assert [text for text in users if text.startswith(NUDGE_START)] == users and len(users) == 1, users
    assert body not in users[0]  # the sender's words never become the prompt
    mail = [text for text in _texts(new, "developer") if f"): {body}" in text]
    assert len(mail) == 1 and "UNTRUSTED DATA" in mail[0], new
    assert any(f"): {body}" in inside for inside in rc.fence_insides(mail[0])), mail[0]
    delivered = sum(json.dumps(_new_items(r["body"])).count(f"): {body}") for r in after)
    assert delivered == 1
    print(f"codex idle nudge: send took {send['seconds']:.2f} s, model request {thread[0]['at']:.2f} s after it")

    peek = subprocess.run(
        [str(plugin / "launcher"), "peek", session], env=sandbox.env(), capture_output=True, check=True
    )
    assert json.loads(peek.stdout)["messages"] == []


def _run_driver(spec: dict[str, Any], sandbox: rc.Sandbox) -> dict[str, Any]:
    done = subprocess.run(
        ["unshare", "-n", sys.executable, str(Path(__file__).resolve())],
        input=json.dumps(spec).encode(),
        # run as a script from tests/real, it finds realclients in tests/ through PYTHONPATH
        env={
            **sandbox.env(),
            "PYTHONPATH": os.pathsep.join(
                [str(Path(__file__).resolve().parents[1]), *filter(None, [sandbox.env().get("PYTHONPATH")])]
            ),
        },
        cwd=str(sandbox.project),
        capture_output=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-4000:]
    return json.loads(done.stdout)


if __name__ == "__main__":
    spec = json.load(sys.stdin)
    json.dump(_drive(spec), sys.stdout)
