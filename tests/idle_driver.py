"""Inside `unshare -n`: one real Claude Code session kept open with stream-json input, left idle
after its first turn, then mailed. Reads a spec on stdin, prints a JSON report on stdout:
the model requests the mock saw before and after the mail, the session's output events, how long
from `relay send` to the next model request, and how Claude ended once its input closed. The spec
may take Claude's messaging socket away first (`socket`: "missing" unlinks it, "refuse" puts a
socket that refuses connections in its place) and may mail the idle session several times
(`rounds`, for latency figures). Used by tests/real/test_idle_real.py."""

import json
import os
import queue
import subprocess
import sys
import threading
import time

import realclients as rc


def _lines(stream, into: queue.Queue) -> None:
    for raw in stream:
        into.put(raw.decode(errors="replace"))
    into.put(None)


def _until_result(events: queue.Queue, seen: list, timeout: float) -> bool:
    """Read output events until a turn's `result` (True) or the timeout / end of output (False)."""
    give_up = time.monotonic() + timeout
    while (left := give_up - time.monotonic()) > 0:
        try:
            line = events.get(timeout=left)
        except queue.Empty:
            return False
        if line is None:
            return False
        try:
            event = json.loads(line)
        except ValueError:
            continue
        seen.append(event)
        if event.get("type") == "result":
            return True
    return False


def _watcher_armed(store: str, sid: str) -> bool:
    from relay.store.files import Store

    return Store(store).watcher(sid) is not None


def _spoil_socket(config: str, how: str) -> str | None:
    """Take the session's messaging socket away as `how` says; its path."""
    import glob
    import socket

    [found] = glob.glob(os.path.join(config, "sessions", "*.json"))
    with open(found) as handle:
        record = json.load(handle)
    path = record.get("messagingSocketPath")
    if path and how in ("missing", "refuse"):
        os.unlink(path)
    if path and how == "refuse":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(path)  # bound, never listening: a connect is refused
        _spoil_socket.keep = sock  # type: ignore[attr-defined]
    return path


def _model_calls(requests: list) -> int:
    return sum(1 for r in requests if r["path"].startswith("/v1/messages") and "count_tokens" not in r["path"])


def _mail_once(spec: dict, env: dict, mock, events: queue.Queue, seen: list, body: str) -> dict:
    """Send `body` to the idle session; when its next model request came and its turn ended."""
    calls = _model_calls(mock.requests)
    sent_at = time.monotonic()
    verb = ["ask", "--wait", "1"] if spec.get("ask") else ["send"]  # ask: a question, expecting a reply
    sent = subprocess.run([*spec["relay"], *verb, spec["session_id"], "--", body], env=env, capture_output=True)
    sent_seconds = time.monotonic() - sent_at
    request_seconds = None
    while time.monotonic() - sent_at < 60:
        if _model_calls(mock.requests) > calls:
            request_seconds = time.monotonic() - sent_at
            break
        time.sleep(0.01)
    woke = _until_result(events, seen, 60)
    texts = json.dumps([r["body"].get("messages", [])[-3:] for r in mock.requests[-2:]])
    bell = "socket" if "Another Claude session sent a message" in texts else "watcher"
    return {
        "sent_seconds": sent_seconds,
        "bell": bell if request_seconds is not None else None,
        "send_rc": sent.returncode,
        "send_out": sent.stdout.decode(errors="replace") + sent.stderr.decode(errors="replace"),
        "request_seconds": request_seconds,
        "woke": woke,
        "wake_seconds": time.monotonic() - sent_at,
    }


def _busy_turn(spec: dict, env: dict, mock, proc: subprocess.Popen, events: queue.Queue, report: dict) -> None:
    """Prompt again; while that turn runs a slow Bash call (Claude's record says `busy`), mail it."""
    import glob

    from relay.store.files import Store

    mock.calls.append(("Bash", {"command": "sleep 4", "description": "wait a little"}))
    report["before_mail"] = list(mock.requests)
    user = {"type": "user", "message": {"role": "user", "content": [{"type": "text", "text": "second prompt"}]}}
    proc.stdin.write((json.dumps(user) + "\n").encode())
    proc.stdin.flush()
    [found] = glob.glob(os.path.join(env["CLAUDE_CONFIG_DIR"], "sessions", "*.json"))
    give_up = time.monotonic() + 30
    while time.monotonic() < give_up and _model_calls(mock.requests) == _model_calls(report["before_mail"]):
        time.sleep(0.05)
    time.sleep(1.0)  # the mock answered with the Bash call: the tool runs now
    with open(found) as handle:
        report["status_at_send"] = json.load(handle).get("status")
    mail = [*spec["relay"], "send", spec["session_id"], "--", spec["body"]]
    sent = subprocess.run(mail, env=env, capture_output=True)
    report["send_rc"] = sent.returncode
    report["woke"] = _until_result(events, report["events"], 60)
    time.sleep(1.0)
    report["after_mail"] = mock.requests[len(report["before_mail"]) :]
    report["rung"] = Store(spec["store"]).last_ring(spec["session_id"]) is not None
    report["wake_seconds"] = 0.0


def main() -> None:
    spec = json.load(sys.stdin)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    mock = rc._Mock(rc.AnthropicHandler).start()
    mock.calls = []
    env = {
        **os.environ,
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{mock.port}",
        "ANTHROPIC_API_KEY": "sk-ant-offline-test",
    }
    sid = spec["session_id"]
    argv = [spec["claude"], "-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose"]
    if spec.get("busy"):
        argv += ["--allowedTools", "Bash"]
    proc = subprocess.Popen(
        [*argv, "--session-id", sid],
        cwd=spec["cwd"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    events: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stdout, events), daemon=True).start()
    err: list[bytes] = []
    threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True).start()
    report: dict = {"events": []}
    user = {"type": "user", "message": {"role": "user", "content": [{"type": "text", "text": "first prompt"}]}}
    proc.stdin.write((json.dumps(user) + "\n").encode())
    proc.stdin.flush()
    report["first_turn"] = _until_result(events, report["events"], 90)
    give_up = time.monotonic() + 20
    while time.monotonic() < give_up and not _watcher_armed(spec["store"], sid):
        time.sleep(0.1)
    report["watcher_armed"] = _watcher_armed(spec["store"], sid)
    if spec.get("busy"):
        _busy_turn(spec, env, mock, proc, events, report)
        return _finish(spec, proc, report, err, mock)
    report["socket"] = _spoil_socket(env.get("CLAUDE_CONFIG_DIR", ""), spec.get("socket", "keep"))
    time.sleep(spec.get("idle_seconds", 2.0))  # idle: nobody types
    report["before_mail"] = list(mock.requests)
    first = _mail_once(spec, env, mock, events, report["events"], spec["body"])
    report.update(first)
    time.sleep(1.0)
    report["after_mail"] = mock.requests[len(report["before_mail"]) :]
    from relay.store.files import Store

    report["auto_wakes"] = Store(spec["store"]).auto_wakes(sid)  # the rewake turn is not the user's
    report["rounds"] = [first]
    for n in range(1, spec.get("rounds", 1)):
        time.sleep(4.0)  # past the ring's hold-off, the watcher re-armed
        report["rounds"].append(_mail_once(spec, env, mock, events, report["events"], f"{spec['body']} round {n}"))
    _finish(spec, proc, report, err, mock)


def _finish(spec: dict, proc: subprocess.Popen, report: dict, err: list, mock) -> None:
    """Close Claude's input, see how it ends, print the report."""
    sid = spec["session_id"]
    closed_at = time.monotonic()
    proc.stdin.close()
    try:
        report["rc"] = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        report["rc"] = "timeout"
    report["exit_seconds"] = time.monotonic() - closed_at
    report["watcher_left"] = not _watcher_armed(spec["store"], sid)
    time.sleep(0.2)
    report["stderr"] = b"".join(err).decode(errors="replace")[-4000:]
    mock.shutdown()
    print(json.dumps(report))


main()
