"""`relay ui` (docs/webview.md), black-box: the program is started through RELAY_CMD as a person would,
its printed URL read, and spoken to over HTTP. What it serves (sessions with their state, threads with
each message's state as `relay status` says), that it answers nothing without its token or under a
foreign Host header, that a send is JSON only and goes out as `user`, its port option and its stop.
The page itself is tested in a real Chromium in tests/faces/test_webview_browser.py."""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import mailbox_lines, new_id, relay_command
from test_log import prompt, send, start

URL = re.compile(r"^http://127\.0\.0\.1:(\d+)/\?token=([A-Za-z0-9_-]{40,})$")


class UI:
    """A running `relay ui`: its port and token, and requests to it."""

    def __init__(self, env: dict[str, str], cwd: Path, *args: str, ignore_sigint: bool = False) -> None:
        def ignored() -> None:  # as a shell starts a background job
            signal.signal(signal.SIGINT, signal.SIG_IGN)

        self.proc = subprocess.Popen(
            [*relay_command(), "ui", "--no-open", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            preexec_fn=ignored if ignore_sigint else None,
        )
        assert self.proc.stdout is not None
        self.line = self.proc.stdout.readline().decode().rstrip("\n")
        found = URL.match(self.line)
        assert found, (self.line, self.proc.stderr.read() if self.proc.poll() is not None else b"")  # type: ignore[union-attr]
        self.url = self.line
        self.port, self.token = int(found.group(1)), found.group(2)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        host: str | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) of one request, with this Host header (default 127.0.0.1:PORT)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", f"127.0.0.1:{self.port}" if host is None else host)
            for name, value in (headers or {}).items():
                conn.putheader(name, value)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            answer = conn.getresponse()
            if answer.getheader("Content-Type") == "text/event-stream":
                data = answer.readline() + answer.readline()  # `event: view` and its data line
            else:
                data = answer.read()
            return answer.status, {k.lower(): v for k, v in answer.getheaders()}, data
        finally:
            conn.close()

    def view(self) -> dict:
        status, _, body = self.request("GET", f"/api/view?token={self.token}")
        assert status == 200, body
        return json.loads(body)

    def post(self, payload: dict, headers: dict[str, str] | None = None) -> tuple[int, dict]:
        sent = {"Content-Type": "application/json", "X-Relay-Token": self.token, **(headers or {})}
        status, _, body = self.request("POST", "/api/send", json.dumps(payload).encode(), sent)
        return status, json.loads(body) if body.startswith(b"{") else {"text": body.decode()}

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def ui(env: dict[str, str], tmp_path: Path):
    server = UI(env, tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def trio(run_relay, tmp_path: Path) -> dict[str, str]:
    """Three started sessions, named api, web and docs after their dirs."""
    ids = {name: new_id() for name in ("api", "web", "docs")}
    for name, sid in ids.items():
        start(run_relay, sid, tmp_path / name)
    return ids


def listening_addresses(port: int) -> set[str]:
    """The local addresses of the listening TCP sockets on `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if int(hex_port, 16) == port and state == "0A":  # LISTEN
                found.add(address)
    return found


def other_address() -> str | None:
    """An address of this machine that is not loopback (where a route out would start), if any."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing address
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") else address


# -- where it listens, and who it answers -------------------------------------------------------------------


def test_it_prints_one_url_with_a_fresh_token_and_listens_on_loopback_only(env, tmp_path):
    first, second = UI(env, tmp_path), UI(env, tmp_path)
    try:
        assert first.token != second.token and first.port != second.port
        assert parse_qs(urlsplit(first.url).query) == {"token": [first.token]}
        assert listening_addresses(first.port) == {"0100007F"}  # 127.0.0.1, and nothing else
        elsewhere = other_address()
        if elsewhere is not None:
            with pytest.raises(OSError):
                socket.create_connection((elsewhere, first.port), timeout=3).close()
    finally:
        assert first.stop() == 0 and second.stop() == 0
    assert first.proc.stdout.read() == b""  # type: ignore[union-attr]  # the URL was its one line
    assert first.proc.stderr.read() == b""  # type: ignore[union-attr]


@pytest.mark.parametrize("path", ["/", "/api/view", "/api/events", "/nothing-here"])
def test_every_get_needs_the_token_and_this_host(ui, path):
    wrong = ui.token[:-1] + ("A" if ui.token[-1] != "A" else "B")
    assert ui.request("GET", path)[0] == 403
    assert ui.request("GET", f"{path}?token=")[0] == 403
    assert ui.request("GET", f"{path}?token={wrong}")[0] == 403
    assert ui.request("GET", f"{path}?token={ui.token[:10]}")[0] == 403
    assert ui.request("GET", path, headers={"X-Relay-Token": wrong})[0] == 403
    for host in ("evil.example", f"evil.example:{ui.port}", f"127.0.0.1:{ui.port + 1}", "127.0.0.1", ""):
        assert ui.request("GET", f"{path}?token={ui.token}", host=host)[0] == 403, host
    expected = 404 if path == "/nothing-here" else 200
    assert ui.request("GET", f"{path}?token={ui.token}")[0] == expected
    assert ui.request("GET", f"{path}?token={ui.token}", host=f"localhost:{ui.port}")[0] == expected
    assert ui.request("GET", path, headers={"X-Relay-Token": ui.token})[0] == expected


def test_a_send_needs_the_token_this_host_and_json(ui, trio, store_home, run_relay):
    payload = {"to": "api", "body": "hello"}
    raw = json.dumps(payload).encode()
    as_json = {"Content-Type": "application/json"}
    refused = [
        ui.request("POST", "/api/send", raw, as_json),  # no token
        ui.request("POST", f"/api/send?token={ui.token}", raw, as_json),  # only in the URL: a form could do that
        ui.request("POST", "/api/send", raw, {**as_json, "X-Relay-Token": "x" * len(ui.token)}),
        ui.request("POST", "/api/send", raw, {**as_json, "X-Relay-Token": ui.token}, host=f"evil.example:{ui.port}"),
    ]
    assert [status for status, _, _ in refused] == [403] * 4
    # a cross-site form can send text/plain or urlencoded with the token in the body: refused too
    with_token = json.dumps({**payload, "token": ui.token}).encode()
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        assert ui.request("POST", "/api/send", with_token, {"Content-Type": kind})[0] == 415, kind
    assert mailbox_lines(store_home, trio["api"]) == []
    # the token in the JSON body or in the header both do
    assert ui.request("POST", "/api/send", with_token, as_json)[0] == 200
    status, answer = ui.post({"to": "api", "body": "second"})
    assert status == 200 and answer["toName"] == "api" and answer["recipient"] == "idle", answer
    assert answer["note"].startswith("api is not running: it reads this when it starts or is woken ("), answer
    inbox = json.loads(run_relay("inbox", "api").stdout)
    assert [(m["fromName"], m["from"], m["body"]) for m in inbox["messages"]] == [
        ("user", None, "hello"),
        ("user", None, "second"),
    ]


def test_a_send_that_relay_send_would_refuse_is_refused_with_its_reason(ui, trio, store_home):
    cases = [
        ({"to": "api", "body": "   "}, "empty message"),
        ({"to": "api", "body": "x" * 30000}, "message too long"),
        ({"to": "nobody-here", "body": "hi"}, "nobody-here"),
        ({"to": "api"}, "body"),
        ({"body": "hi"}, "to"),
        ({"to": "api", "body": "hi", "replyTo": "0" * 36}, "reply to"),
    ]
    for payload, reason in cases:
        status, answer = ui.post(payload)
        assert status == 400 and reason in answer["error"] and "\n" not in answer["error"], (payload, answer)
    status, _, body = ui.request(
        "POST", "/api/send", b"{not json", {"Content-Type": "application/json", "X-Relay-Token": ui.token}
    )
    assert status == 400, body
    assert mailbox_lines(store_home, trio["api"]) == []


# -- what it serves ----------------------------------------------------------------------------------------


@pytest.mark.usefixtures("world")
def test_the_view_holds_sessions_and_threads_with_the_states_relay_status_gives(ui, trio, run_relay, tmp_path):
    question = send(run_relay, "api", "--from", "web", "--", "is v2 final?")
    assert "is v2 final?" in prompt(run_relay, trio["api"], tmp_path / "api")
    reply = send(run_relay, "web", "--from", "api", "--reply-to", question, "--", "final since Monday")
    other = send(run_relay, "docs", "--", "document v2 please")
    event = {"session_id": trio["docs"], "hook_event_name": "SessionEnd", "reason": "exit", "cwd": str(tmp_path)}
    assert run_relay("hook", input=json.dumps(event)).returncode == 0
    status, answer = ui.post({"to": "web", "body": "thanks both", "replyTo": reply[:8]})
    assert status == 200, answer

    deadline = time.monotonic() + 10
    while True:
        view = ui.view()
        threads = {t["thread"]: t for t in view["threads"]}
        if len(threads.get(question, {}).get("messages", [])) == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    sessions = {s["name"]: s for s in view["sessions"]}
    assert {name: (s["id"], s["tool"], s["state"]) for name, s in sessions.items()} == {
        "api": (trio["api"], "claude", "idle"),
        "web": (trio["web"], "claude", "idle"),
        "docs": (trio["docs"], "claude", "ended"),
    }
    assert sessions["api"]["dir"] == str(tmp_path / "api")
    assert view["sender"] == "user" and view["journal"] is True
    assert list(threads) == [question, other]  # the newest activity first
    talk = threads[question]["messages"]
    assert [(m["fromName"], m["toName"], m["body"]) for m in talk] == [
        ("web", "api", "is v2 final?"),
        ("api", "web", "final since Monday"),
        ("user", "web", "thanks both"),
    ]
    assert [m["replyTo"] for m in talk] == [None, question, reply]
    for message in [*talk, *threads[other]["messages"]]:
        done = run_relay("status", message["id"], "--json")
        assert message["state"] == json.loads(done.stdout)["state"], message
    assert [m["state"] for m in talk] == ["replied", "replied", "queued"]


def test_the_page_is_self_contained_under_a_strict_policy(ui):
    status, headers, body = ui.request("GET", f"/?token={ui.token}")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    policy = headers["content-security-policy"]
    nonce = re.search(r"script-src 'nonce-([A-Za-z0-9_-]{16,})'", policy)
    assert nonce and "default-src 'none'" in policy and "unsafe" not in policy, policy
    page = body.decode()
    assert page.count(f'nonce="{nonce.group(1)}"') == 2  # its one style and one script
    assert not re.search(r"\b(src|href)=", page) and "innerHTML" not in page and "http" not in page
    assert ui.request("GET", f"/?token={ui.token}")[1]["content-security-policy"] != policy  # a nonce per page
    assert headers["cache-control"] == "no-store" and headers["referrer-policy"] == "no-referrer"


def test_the_event_stream_sends_the_view(ui, trio):
    status, headers, body = ui.request("GET", f"/api/events?token={ui.token}")
    assert status == 200 and headers["content-type"] == "text/event-stream"
    kind, data = body.decode().splitlines()
    assert kind == "event: view" and data.startswith("data: ")
    assert {s["name"] for s in json.loads(data[len("data: ") :])["sessions"]} == {"api", "web", "docs"}


# -- options and stopping ----------------------------------------------------------------------------------


@pytest.mark.parametrize("port", ["abc", "-1", "65536", "99999999", "1.5", ""])
def test_a_bad_port_is_a_usage_error(run_relay, port):
    done = run_relay("ui", "--no-open", "--port", port)
    err = done.stderr.decode()
    assert done.returncode == 2 and done.stdout == b"", (port, err)
    assert err.count("\n") == 1 and "--port" in err and err.endswith("(see relay ui --help)\n"), err


def test_a_port_in_use_is_one_line_and_exit_1(run_relay):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        done = run_relay("ui", "--no-open", "--port", str(taken.getsockname()[1]))
    finally:
        taken.close()
    err = done.stderr.decode()
    assert done.returncode == 1 and done.stdout == b"", err
    assert err.count("\n") == 1 and "cannot listen on 127.0.0.1:" in err and "in use" in err, err


def test_a_given_port_is_used(env, tmp_path):
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    server = UI(env, tmp_path, "--port", str(port))
    try:
        assert server.port == port
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
def test_it_serves_until_a_signal_then_exits_0_even_as_a_background_job(env, tmp_path, how):
    server = UI(env, tmp_path, ignore_sigint=True)
    stream = socket.create_connection(("127.0.0.1", server.port), timeout=5)  # an open event stream
    stream.sendall(f"GET /api/events?token={server.token} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
    assert stream.recv(15) == b"HTTP/1.1 200 OK"
    time.sleep(0.5)
    server.proc.send_signal(how)
    assert server.proc.wait(timeout=10) == 0
    assert server.proc.stderr.read() == b""  # type: ignore[union-attr]
    stream.close()
    assert listening_addresses(server.port) == set()


@pytest.mark.files_only(reason="plants a registry file owned by another user")
@pytest.mark.usefixtures("world")
def test_a_store_that_fails_is_one_line_in_the_view_and_the_server_goes_on(ui, trio, store_home):
    if os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")
    assert {s["name"] for s in ui.view()["sessions"]} == {"api", "web", "docs"}
    registry = store_home / "agents" / f"{trio['web']}.json"
    os.chown(registry, 65534, -1)  # a store file that is not yours is refused (docs/security.md)
    try:
        deadline = time.monotonic() + 10
        while "error" not in (view := ui.view()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "\n" not in view["error"] and f"{trio['web']}.json" in view["error"], view
        assert {s["name"] for s in view["sessions"]} == {"api", "web", "docs"}  # the last view stays
    finally:
        os.chown(registry, os.getuid(), -1)
    deadline = time.monotonic() + 10
    while "error" in (view := ui.view()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "error" not in view and ui.proc.poll() is None


def test_an_oversized_send_is_refused_and_queues_nothing(ui, trio, store_home):
    big = json.dumps({"to": "api", "body": "x" * (70 * 1024)}).encode()
    status, _, body = ui.request(
        "POST", "/api/send", big, {"Content-Type": "application/json", "X-Relay-Token": ui.token}
    )
    assert status == 413, body
    assert mailbox_lines(store_home, trio["api"]) == []
    assert ui.post({"to": "api", "body": "small"})[0] == 200  # the server still answers
