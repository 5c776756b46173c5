"""Running the real Claude Code and Codex CLIs (and the MCP Inspector) against this plugin, offline.

Used two ways:

- imported by the end-to-end tests: where the clients are, whether this host can run them
  (root + `unshare -n`), sandboxes with their own HOME / CLAUDE_CONFIG_DIR / CODEX_HOME /
  AGENT_RELAY_HOME, and a clean copy of the plugin as a user's git clone would have it;
- run as a script *inside* a fresh network namespace (`unshare -n python3 realclients.py`), where it
  brings loopback up, starts mock model APIs on 127.0.0.1 and runs one scenario (JSON on stdin,
  JSON report on stdout). The mocks let the real clients get as far as calling the bus's tools:
  the Anthropic mock answers the first request with a `tool_use`, the OpenAI Responses mock with a
  call of Codex's `exec` tool running a little JavaScript that calls the MCP tool. Every request
  body is recorded, so a test sees the tool list the client offered and the tool results it got.

The clients come from `$RELAY_CLIENTS_DIR/node_modules/.bin` (default: `clients` in the dir outside
the clone where `./run-tests` keeps its venv, else `<repo>/.ci/cache/clients`, where `.ci/run` puts
them), installed from tests/clients/package-lock.json (pinned versions) by `tests/clients/install DIR`,
or from tests/clients/compat/package-lock.json (the older releases still supported) by
`tests/clients/install --compat DIR`. The tests run against either set; where the two releases
behave differently (deferred MCP tools, where hook context goes), a test accepts both observed
shapes and still checks the same outcome. Nothing here ever talks to a vendor: every client
process runs in a network namespace that has only loopback.
"""

import contextlib
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# The package sets the tests run against: the newest releases (the default), and the older ones
# relay still supports (`tests/clients/install --compat DIR`, run as a second pass by .ci/run).
CLIENT_SETS = {
    "current": Path(__file__).resolve().parent / "clients",
    "compat": Path(__file__).resolve().parent / "clients" / "compat",
}

# What a user's clone holds that a test copy should not: VCS data, caches, the clients themselves.
_NOT_PLUGIN = {
    ".git",
    ".ci",
    ".cache",
    "node_modules",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".venv",
    ".benchmarks",
}

CLAUDE_TOOL_PREFIX = "mcp__plugin_session-relay_bus__"
CODEX_TOOL_PREFIX = "mcp__bus__"
BUS_TOOLS = ("whoami", "register", "roster", "send", "inbox", "discover", "status", "wait")

# The fence as a model sees it: `<session-relay-mail boundary="B">`, the mail, then
# `</session-relay-mail boundary="B">`, B being 24 letters and digits drawn afresh for each delivery.
# Codex shows a Stop reason with <, > (and quotes) as HTML entities.
_LT, _GT, _QUOT = "(?:<|&lt;)", "(?:>|&gt;)", '(?:"|&quot;|&#34;|&#x22;)'
_OPEN = f"{_LT}session-relay-mail boundary={_QUOT}(?P<boundary>[A-Za-z0-9]{{24}}){_QUOT}{_GT}"
_FENCE = re.compile(f"{_OPEN}\n(?P<inside>.*?){_LT}/session-relay-mail boundary={_QUOT}(?P=boundary){_QUOT}{_GT}", re.S)


def has_fence_open(text: str) -> bool:
    """Does `text` hold the opening tag of a fence with its boundary?"""
    return re.search(_OPEN, text) is not None


def fence_insides(text: str) -> list[str]:
    """What each fence in `text` holds, from the line after its opening tag to its closing tag (the
    one carrying the same boundary)."""
    return [found["inside"] for found in _FENCE.finditer(text)]


def strings_in(value: Any) -> Iterator[str]:
    """Every string inside a decoded JSON value (a transcript line, a model request), depth first."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def client_set() -> str:
    """Which committed package set the clients dir was installed from ("current" or "compat"): the
    one whose lock tests/clients/install recorded there. AssertionError when it is neither."""
    installed = clients_bin().parent.parent / ".installed-lock"
    recorded = installed.read_bytes() if installed.exists() else b""
    for name, where in CLIENT_SETS.items():
        if (where / "package-lock.json").read_bytes() == recorded:
            return name
    raise AssertionError(
        f"{installed.parent} was not installed from tests/clients or tests/clients/compat: "
        f"run tests/clients/install [--compat] {installed.parent}"
    )


def pinned_versions() -> dict[str, str]:
    """The client versions of the package set installed (tests/clients[/compat]/package.json)."""
    return json.loads((CLIENT_SETS[client_set()] / "package.json").read_text())["dependencies"]


def package_version() -> str:
    """The session-relay version from pyproject.toml."""
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


# The pytest item running now (set by conftest.py; None outside pytest, e.g. in the scenario driver).
current_test: Any = None


def clients_bin() -> Path:
    """Where the pinned clients' executables are.

    Every test that runs a client must carry `@pytest.mark.real_clients`: .ci/run's compatibility
    pass selects the tests by it, so an unmarked one fails here instead of going untested there.
    """
    if current_test is not None and current_test.get_closest_marker("real_clients") is None:
        raise AssertionError(
            f"{current_test.nodeid} runs a real client but is not marked @pytest.mark.real_clients "
            "(.ci/run's compatibility pass runs only the marked tests)"
        )
    root = os.environ.get("RELAY_CLIENTS_DIR")
    if root:
        return Path(root) / "node_modules" / ".bin"
    for where in (run_tests_state() / "clients", REPO / ".ci" / "cache" / "clients"):
        if (where / "node_modules" / ".bin").is_dir():
            return where / "node_modules" / ".bin"
    return run_tests_state() / "clients" / "node_modules" / ".bin"


def run_tests_state() -> Path:
    """Where `./run-tests` keeps its venv and clients for this clone: outside it, named by the
    clone's name and the POSIX `cksum` of its path (as run-tests and the launcher name it)."""
    crc = subprocess.run(["cksum"], input=str(REPO).encode(), capture_output=True, check=False).stdout.split()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.environ.get("HOME") or "/tmp", ".cache")
    return Path(cache) / "session-relay" / "tests" / f"{REPO.name}-{crc[0].decode() if crc else 'unknown'}"


def why_not_runnable(*clients: str) -> str | None:
    """None when this host can run `clients` offline; else the reason, to skip with."""
    if not sys.platform.startswith("linux"):
        return f"the real-client tests need Linux network namespaces (this is {sys.platform})"
    if os.geteuid() != 0:
        return "the real-client tests need root for `unshare -n` (a loopback-only network namespace)"
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "the real-client tests need `unshare` (util-linux) and `ip` (iproute2)"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return f"`unshare -n` does not work here: {probe.stderr.decode(errors='replace').strip()}"
    for name in clients:
        if not (clients_bin() / name).exists():
            return (
                f"{clients_bin() / name} is missing: run ./run-tests (it installs the pinned clients "
                f"when npm exists), or tests/clients/install DIR and set RELAY_CLIENTS_DIR=DIR"
            )
    return None


def skip_unless_runnable(*clients: str) -> None:
    """pytest.skip with a printed reason when the real clients cannot run here.

    With RELAY_REQUIRE_REAL_CLIENTS=1 (set by .ci/run) a missing client or namespace is a failure
    instead, so CI can never pass by skipping these tests.
    """
    reason = why_not_runnable(*clients)
    if reason:
        give_up(reason)


def skip_in_compat_pass(client: str) -> None:
    """Skip, saying why, when the clients installed are the compatibility set: it pins only the older
    Claude Code and Codex, so a test of another CLI has nothing to run there (the main pass runs it,
    and fails without the client under RELAY_REQUIRE_REAL_CLIENTS=1)."""
    import pytest

    try:
        installed = client_set()
    except (AssertionError, OSError):
        return  # not installed from either set: skip_unless_runnable says what is missing
    if installed == "compat":
        reason = f"{client} is not in the compatibility client set (tests/clients/compat/)"
        print(f"real-client test not run: {reason}", file=sys.stderr)
        pytest.skip(reason)


def give_up(reason: str) -> None:
    """Skip (printing why), or fail when RELAY_REQUIRE_REAL_CLIENTS=1."""
    import pytest

    print(f"real-client test not run: {reason}", file=sys.stderr)
    if os.environ.get("RELAY_REQUIRE_REAL_CLIENTS") == "1":
        pytest.fail(f"RELAY_REQUIRE_REAL_CLIENTS=1 but {reason}")
    pytest.skip(reason)


def plugin_copy(dest: Path) -> Path:
    """A copy of the plugin as a git clone has it (no .git, caches or installed clients)."""

    def ignore(_dir: str, names: list[str]) -> set[str]:
        return {name for name in names if name in _NOT_PLUGIN}

    shutil.copytree(REPO, dest, ignore=ignore, symlinks=True)
    return dest


def plugin_under_test(dest: Path) -> Path:
    """A copy of the plugin that runs the relay under test.

    The copy's launcher runs the committed binary when there is one; unless the tests run against
    that binary (RELAY_CMD set, as `.ci/run`'s second pass does), drop it so the launcher runs the
    copied sources.
    """
    plugin_copy(dest)
    if not os.environ.get("RELAY_CMD"):
        shutil.rmtree(dest / "bin", ignore_errors=True)
    return dest


@dataclass
class Sandbox:
    """A private HOME with both CLIs' config dirs, a relay store and a project dir (a git repo)."""

    root: Path

    def __post_init__(self) -> None:
        for path in (self.home, self.claude_config, self.codex_home, self.project):
            path.mkdir(parents=True, exist_ok=True)
        # Codex resumes only inside a git repo or trusted dir; a real project is a git repo.
        subprocess.run(["git", "init", "-q", str(self.project)], check=True)

    def stop_leftovers(self) -> list[int]:
        """Kill processes still running a program from inside this sandbox, or with its store; their pids.

        Codex's TUI starts an `app-server` daemon that detaches (its parent becomes pid 1) and
        would outlive the test; a bus run from the sources is a Python outside the sandbox, known by
        its environment. Nothing of a test may keep running after it.
        """
        root = str(self.root.resolve()) + os.sep
        mine = f"AGENT_RELAY_HOME={self.relay_home}".encode()
        killed = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                exe = os.readlink(f"/proc/{entry}/exe")
                with open(f"/proc/{entry}/environ", "rb") as handle:
                    environ = handle.read().split(b"\0")
            except OSError:
                continue
            if exe.startswith(root) or mine in environ:
                with contextlib.suppress(OSError):
                    os.kill(int(entry), signal.SIGKILL)
                    killed.append(int(entry))
        return killed

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def claude_config(self) -> Path:
        return self.home / ".claude"

    @property
    def codex_home(self) -> Path:
        return self.home / ".codex"

    @property
    def gemini_dir(self) -> Path:
        return self.home / ".gemini"

    @property
    def relay_home(self) -> Path:
        return self.root / "relay"

    @property
    def project(self) -> Path:
        return self.root / "project"

    def env(self) -> dict[str, str]:
        """A minimal environment: nothing of the developer's own config or credentials."""
        keep = ("PATH", "LANG", "LC_ALL", "TERM", "TMPDIR", "PYTHONPATH")
        env = {name: os.environ[name] for name in keep if name in os.environ}
        env.update(
            HOME=str(self.home),
            CLAUDE_CONFIG_DIR=str(self.claude_config),
            CODEX_HOME=str(self.codex_home),
            AGENT_RELAY_HOME=str(self.relay_home),
            PATH=f"{clients_bin()}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
        )
        return env

    def registry(self) -> dict[str, Any]:
        """The relay registry (empty when none was written)."""
        from conftest import file_registry

        return file_registry(self.relay_home)


def gemini_env(sandbox: Sandbox) -> dict[str, str]:
    """The sandbox's environment for Gemini CLI: the API-key login the mock accepts, a trusted folder.

    The env var alone picks an auth type a headless Gemini rejects: the settings name the key's."""
    sandbox.gemini_dir.mkdir(parents=True, exist_ok=True)
    settings = sandbox.gemini_dir / "settings.json"
    if not settings.exists():
        settings.write_text(json.dumps({"security": {"auth": {"selectedType": "gemini-api-key"}}}))
    return {**sandbox.env(), "GEMINI_CLI_TRUST_WORKSPACE": "true"}


def gemini_link(sandbox: Sandbox, plugin: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Install the clone's Gemini extension the documented way: `gemini extensions link <clone>/gemini`."""
    gemini = str(clients_bin() / "gemini")
    done = offline([gemini, "extensions", "link", str(plugin / "gemini"), "--consent"], env, sandbox.project)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    return done


def gemini_wake_step(sandbox: Sandbox, plugin: Path, target: str, calls: list[list[Any]]) -> dict[str, Any]:
    """A scenario step: `relay wake <target>` through the clone's launcher, from the sandbox's root (not the
    project: wake changes into the target's dir itself); the resumed Gemini's mock model makes `calls`."""
    return {
        "kind": "gemini",
        "cwd": str(sandbox.root),
        "argv": [str(plugin / "launcher"), "wake", target],
        "calls": calls,
        "timeout": 180,
    }


def claude_whoami_step(cwd: Path, plugin: Path, session: str, *extra: str) -> dict[str, Any]:
    """A scenario step: `claude -p` with the plugin at `plugin`, as `session`; its mock model calls the bus's
    `whoami`, which the run allows without asking. `extra` goes to Claude's command line."""
    whoami = CLAUDE_TOOL_PREFIX + "whoami"
    argv = [str(clients_bin() / "claude"), "-p", "who am i?", "--plugin-dir", str(plugin), "--session-id", session]
    return {"kind": "claude", "cwd": str(cwd), "tool": whoami, "argv": [*argv, *extra, "--allowedTools", whoami]}


def offline(argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a command in a new network namespace (no network at all)."""
    return subprocess.run(
        ["unshare", "-n", *argv], env=env, cwd=str(cwd), capture_output=True, timeout=timeout, check=False
    )


def scenario(spec: dict[str, Any], env: dict[str, str], cwd: Path, timeout: float = 300) -> dict[str, Any]:
    """Run one scenario of this file's driver inside `unshare -n`; its JSON report."""
    done = subprocess.run(
        ["unshare", "-n", sys.executable, str(Path(__file__).resolve())],
        input=json.dumps(spec).encode(),
        env=env,
        cwd=str(cwd),
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(
            f"scenario driver failed ({done.returncode}):\n{done.stderr.decode(errors='replace')[-4000:]}"
        )
    return json.loads(done.stdout)


# ---------------------------------------------------------------- inside the namespace: mock APIs


def since_model_spoke(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages of an Anthropic request after the model's last answer: the turn being asked about.

    A resumed session's request also carries all its earlier turns.
    """
    messages = request.get("messages", [])
    spoke = [i for i, message in enumerate(messages) if message.get("role") == "assistant"]
    return messages[spoke[-1] + 1 :] if spoke else messages


def message_texts(request: dict[str, Any]) -> list[str]:
    """Every text an Anthropic request's messages carry: string contents, text blocks, and the texts
    of tool results, whatever the message's role (Claude 2.1.3xx also sends `system` messages)."""
    texts: list[str] = []

    def collect(content: Any) -> None:
        if isinstance(content, str):
            texts.append(content)
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
                texts.append(block["text"])
            elif isinstance(block, dict) and block.get("type") == "tool_result":
                collect(block.get("content"))

    for message in request.get("messages", []):
        if isinstance(message, dict):
            collect(message.get("content"))
    return texts


_TOOL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


def deferred_tools(request: dict[str, Any]) -> set[str]:
    """Tools a request names in a message instead of listing them in `tools`.

    Claude Code 2.1.3xx defers MCP tools: it sends their names one per line after a line that says
    "deferred tools are now available via ToolSearch", and the model may call them by name.
    """
    names: set[str] = set()
    for text in message_texts(request):
        listing = False
        for line in text.splitlines():
            if "deferred tools" in line.lower():
                listing = True
            elif listing and _TOOL_NAME.fullmatch(line.strip()):
                names.add(line.strip())
            elif listing and names:
                listing = False  # the first line that is not a name ends the list
    return names


def callable_tools(request: dict[str, Any]) -> set[str]:
    """The tools the model may call in an Anthropic request: those in `tools`, and deferred ones."""
    listed = {tool.get("name") for tool in request.get("tools", []) if isinstance(tool, dict)}
    return {name for name in listed if isinstance(name, str)} | deferred_tools(request)


def _tool_results_in(request: dict[str, Any]) -> list[str]:
    """Texts of the tool results a client sent back in one model request (both APIs)."""
    texts: list[str] = []
    for message in request.get("messages", []):  # Anthropic
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if block.get("type") == "tool_result":
                inner = block.get("content")
                if isinstance(inner, str):
                    texts.append(inner)
                for part in inner if isinstance(inner, list) else []:
                    if part.get("type") == "text":
                        texts.append(part["text"])
    for item in request.get("input", []):  # OpenAI Responses
        if isinstance(item, dict) and item.get("type") in ("custom_tool_call_output", "function_call_output"):
            output = item.get("output")
            if isinstance(output, str):
                texts.append(output)
            for part in output if isinstance(output, list) else []:
                if isinstance(part, dict) and part.get("type") in ("input_text", "output_text"):
                    texts.append(part["text"])
    return texts


class _Mock(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: type, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), handler)
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.first_request_hook: Any = None
        self.answered_first = False

    @property
    def port(self) -> int:
        return self.server_address[1]

    def start(self) -> "_Mock":
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Mock

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _read(self) -> dict[str, Any] | None:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            request = json.loads(raw)
        except ValueError:
            return None
        with self.server.lock:
            self.server.requests.append({"path": self.path, "body": request, "at": time.time()})
            first = not self.server.answered_first
            self.server.answered_first = True
        if first and self.server.first_request_hook:
            self.server.first_request_hook()
        return request


def _sse(events: list[dict[str, Any]]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


class AnthropicHandler(_Handler):
    """Messages API: answer each request with the next of `server.calls` (a tool_use), then with text.

    A call waits for a request that offers its tool, in `tools` or by name as a deferred tool (Claude
    may connect MCP servers late; 2.1.3xx names MCP tools instead of listing them). A call
    named None is a scripted text answer (its second item is the text), so a script can end a turn
    and then call a tool again in the same run (e.g. after a Stop hook extended the turn).
    """

    def do_POST(self) -> None:
        request = self._read()
        if request is None or not self.path.startswith("/v1/messages") or "count_tokens" in self.path:
            self._reply(200, b'{"input_tokens": 1}', "application/json")
            return
        offered = callable_tools(request)
        answer = "done"
        with self.server.lock:
            call = self.server.calls.pop(0) if self.server.calls and self.server.calls[0][0] in offered else None
            if call is None and self.server.calls and self.server.calls[0][0] is None:
                answer = str(self.server.calls.pop(0)[1])
        usage = {"input_tokens": 1, "output_tokens": 1}
        n = uuid.uuid4().hex
        # Claude Code merges assistant messages that share an id, and drops a tool_use whose id it has
        # seen before: in a resumed session every id must be new.
        message = {
            "id": f"msg_mock_{n}",
            "type": "message",
            "role": "assistant",
            "model": request.get("model"),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        if call:
            start = {"type": "tool_use", "id": f"toolu_mock_{n}", "name": call[0], "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(call[1])}
            stop = "tool_use"
        else:
            start, delta, stop = {"type": "text", "text": ""}, {"type": "text_delta", "text": answer}, "end_turn"
        if not request.get("stream"):
            block = {**start, "input": call[1]} if call else {"type": "text", "text": answer}
            body = json.dumps({**message, "content": [block], "stop_reason": stop}).encode()
            self._reply(200, body, "application/json")
            return
        events = [
            {"type": "message_start", "message": message},
            {"type": "content_block_start", "index": 0, "content_block": start},
            {"type": "content_block_delta", "index": 0, "delta": delta},
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": 1},
            },
            {"type": "message_stop"},
        ]
        self._reply(200, _sse(events), "text/event-stream")

    do_GET = do_POST


class ResponsesHandler(_Handler):
    """OpenAI Responses API: first run `server.js` in Codex's `exec` tool, then say done.

    With `server.script` (a list of {"js": CODE} or {"text": TEXT}) it answers each request with the
    next entry instead, then with "done"; `{SESSION}` in CODE becomes the asking thread's id.
    """

    def do_POST(self) -> None:
        request = self._read()
        if request is None:
            self._reply(400, b'{"error": {"message": "not JSON"}}', "application/json")
            return
        if getattr(self.server, "script", None) is not None:
            self._reply(200, _sse(_response_events(self._scripted(request))), "text/event-stream")
            return
        # Only what came after the model last spoke counts: a resumed session's input holds earlier turns.
        items = [item for item in request.get("input", []) if isinstance(item, dict)]
        spoke = [
            i
            for i, item in enumerate(items)
            if item.get("role") == "assistant" or item.get("type", "").endswith("_call")
        ]
        answered = _tool_results_in({"input": items[spoke[-1] + 1 :] if spoke else items})
        if self.server.js and not answered:
            item = {
                "type": "custom_tool_call",
                "id": "ctc_mock",
                "call_id": "call_mock",
                "name": "exec",
                "input": self.server.js,
                "status": "completed",
            }
        else:
            item = {
                "type": "message",
                "role": "assistant",
                "id": "msg_mock",
                "status": "completed",
                "content": [{"type": "output_text", "text": "done", "annotations": []}],
            }
        self._reply(200, _sse(_response_events(item)), "text/event-stream")

    def _scripted(self, request: dict[str, Any]) -> dict[str, Any]:
        """The output item for the script's next entry (fresh ids: one session holds many of them)."""
        with self.server.lock:
            answer = self.server.script.pop(0) if self.server.script else {"text": "done"}
        n = uuid.uuid4().hex
        if "js" in answer:
            thread = str((request.get("client_metadata") or {}).get("thread_id", ""))
            code = answer["js"].replace("{SESSION}", thread)
            return {
                "type": "custom_tool_call",
                "id": f"ctc_{n}",
                "call_id": f"call_{n}",
                "name": "exec",
                "input": code,
                "status": "completed",
            }
        return {
            "type": "message",
            "role": "assistant",
            "id": f"msg_{n}",
            "status": "completed",
            "content": [{"type": "output_text", "text": answer["text"], "annotations": []}],
        }

    do_GET = do_POST


def _response_events(item: dict[str, Any]) -> list[dict[str, Any]]:
    """The SSE events of one Responses API answer holding `item`."""
    usage = {
        "input_tokens": 1,
        "output_tokens": 1,
        "total_tokens": 2,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0},
    }
    return [
        {"type": "response.created", "response": {"id": "resp_mock"}},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": {"id": "resp_mock", "usage": usage}},
    ]


def is_main_request(request: dict[str, Any], main_tool: str | None = None) -> bool:
    """Does a Chat Completions request come from the agent's own turn: it offers tools, `main_tool`
    among them when given (side queries offer none, or a sub-agent's few)?"""
    tools = request.get("tools") or []
    names = {(tool.get("function") or {}).get("name") for tool in tools if isinstance(tool, dict)}
    return bool(tools) and (main_tool is None or main_tool in names)


class ChatCompletionsMock:
    """An OpenAI Chat Completions API on 127.0.0.1 (`POST /v1/chat/completions`, SSE when the request
    says `stream: true`), for clients configured with an OpenAI-compatible base URL (Qwen Code,
    OpenCode). Self-contained: its own server, handler and recording.

    It answers each model request with the next entry of `script` and, once the script is spent,
    with the text "done". An entry is `{"tool": NAME, "args": {...}}` (one tool call, by name: the
    tool need not be in the request's `tools`, as clients that defer MCP tools behind a search
    tool still run a call by name), or `{"text": TEXT}`; either may name `before`, an argv run
    before the answer is sent (recorded in `befores`). A request whose `tools` list is empty or
    missing, or lacks `main_tool` when one is given, is a client's side query (a title, a summary,
    a memory-extraction sub-agent): it gets a plain text answer and does not consume the script.
    Every request is recorded in `requests` as
    `{"path", "body", "at"}` (`at`: time.time() when it arrived), and `on_request`, when set, is
    called with each recorded main request before it is answered.
    """

    def __init__(self, script: list[dict[str, Any]] | None = None, port: int = 0, main_tool: str | None = None) -> None:
        mock = self
        self.script = list(script or [])
        self.main_tool = main_tool
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.on_request: Any = None
        self.befores: list[dict[str, Any]] = []  # each `before` command run: argv, rc, when it ended

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    request = json.loads(raw)
                except ValueError:
                    request = None
                if not isinstance(request, dict) or not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, b'{"error": {"message": "not here"}}', "application/json")
                    return
                self._send(200, *mock.answer(self.path, request))

            def do_GET(self) -> None:  # a model listing, should a client ask
                self._send(200, b'{"object": "list", "data": [{"id": "mock", "object": "model"}]}', "application/json")

            def _send(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "ChatCompletionsMock":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def is_main(self, request: dict[str, Any]) -> bool:
        """Is this one of the agent's own model requests (not a side query)?"""
        return is_main_request(request, self.main_tool)

    def answer(self, path: str, request: dict[str, Any]) -> tuple[bytes, str]:
        """The body and content type answering one request (recorded first)."""
        main = self.is_main(request)
        with self.lock:
            self.requests.append({"path": path, "body": request, "at": time.time()})
            entry = (self.script.pop(0) if self.script else {"text": "done"}) if main else {"text": "ok"}
        if main and self.on_request is not None:
            self.on_request(request)
        if entry.get("before"):  # a command run before this answer: mail sent mid-turn
            done = subprocess.run(entry["before"], capture_output=True, timeout=60, check=False)
            with self.lock:
                self.befores.append({"argv": entry["before"], "rc": done.returncode, "at": time.time()})
        n = uuid.uuid4().hex[:24]
        if "tool" in entry:
            call = {
                "index": 0,
                "id": f"call_{n}",
                "type": "function",
                "function": {"name": entry["tool"], "arguments": json.dumps(entry.get("args", {}))},
            }
            message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [call]}
            finish = "tool_calls"
        else:
            message, finish = {"role": "assistant", "content": str(entry["text"])}, "stop"
        usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        head = {"id": f"chatcmpl-{n}", "created": int(time.time()), "model": request.get("model") or "mock"}
        if not request.get("stream"):
            choice = {"index": 0, "message": message, "finish_reason": finish}
            body = {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
            return json.dumps(body).encode(), "application/json"
        chunks = [
            {"index": 0, "delta": message, "finish_reason": None},
            {"index": 0, "delta": {}, "finish_reason": finish},
        ]
        events = [{**head, "object": "chat.completion.chunk", "choices": [choice]} for choice in chunks]
        events.append({**head, "object": "chat.completion.chunk", "choices": [], "usage": usage})
        data = b"".join(f"data: {json.dumps(event)}\n\n".encode() for event in events)
        return data + b"data: [DONE]\n\n", "text/event-stream"


class GeminiHandler(_Handler):
    """Gemini API (`/v1beta/models/<model>:generateContent` and `:streamGenerateContent?alt=sse`).

    Model turns are the streamed requests: each is answered with the next of `server.calls` — a
    `functionCall` of a tool the request offers (`[name, args]`; Gemini names an MCP tool
    `mcp_<server>_<tool>`; `{MAIL_ID}`/`{MAIL_FROM}` in its args become the id and sender of the last
    question fenced in the request, as _answering says), or a scripted text (`[None, text]`) — then
    with "done". Before answering
    the n-th streamed request (counted from 0) the commands in `server.before[n]` run, so a test can
    queue mail while the session is mid-turn. A non-streamed request is Gemini's own router or
    next-speaker check: it gets a JSON text that satisfies each of them and consumes nothing.
    """

    def do_POST(self) -> None:
        request = self._read()
        if request is None:
            self._reply(400, b'{"error": {"code": 400, "message": "not JSON"}}', "application/json")
            return
        if ":streamGenerateContent" not in self.path:
            text = json.dumps(
                {
                    "reasoning": "mock",
                    "model_choice": "flash",
                    "complexity_reasoning": "mock",
                    "complexity_score": 10,
                    "next_speaker": "user",
                }
            )
            self._reply(200, json.dumps(_gemini_answer({"text": text})).encode(), "application/json")
            return
        offered = gemini_tools(request)
        with self.server.lock:
            turn = self.server.turns
            self.server.turns += 1
            calls = self.server.calls
            call = calls.pop(0) if calls and calls[0][0] in offered else None
            answer = {"text": "done"}
            if call is None and calls and calls[0][0] is None:
                answer = {"text": str(calls.pop(0)[1])}
            elif call is not None:
                answer = {"functionCall": {"name": call[0], "args": _answering(request, call[1])}}
        for argv in self.server.before.get(str(turn), []):
            self.server.ran.append(_run_client({"argv": argv, "cwd": self.server.cwd}, 0))
        self._reply(200, f"data: {json.dumps(_gemini_answer(answer))}\r\n\r\n".encode(), "text/event-stream")

    do_GET = do_POST


# What a model reads off the last question fenced in its request to answer it: the `- from` line's
# id, and the sender the question's "To answer" line names.
_MAIL_ID = re.compile(r"^- from .*? \((?:[^)]*, )?id (?P<id>[^,)\s]+)", re.M)
_MAIL_FROM = re.compile(r"^  To answer: .*? with to (?P<to>\S+) and replyTo ", re.M)


def _answering(request: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    """`args` with `{MAIL_ID}` and `{MAIL_FROM}` in its string values replaced by the id and the sender
    of the last question fenced in the Gemini request (left as they are when there is none)."""
    insides = [inside for text in gemini_texts(request) for inside in fence_insides(text)]
    found = {}
    for key, pattern, group in (("{MAIL_ID}", _MAIL_ID, "id"), ("{MAIL_FROM}", _MAIL_FROM, "to")):
        matches = [match[group] for inside in insides for match in pattern.finditer(inside)]
        if matches:
            found[key] = matches[-1]

    def filled(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        for key, seen in found.items():
            value = value.replace(key, seen)
        return value

    return {key: filled(value) for key, value in args.items()}


def _gemini_answer(part: dict[str, Any]) -> dict[str, Any]:
    usage = {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2}
    candidate = {"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "gemini-2.5-flash"}


def gemini_tools(request: dict[str, Any]) -> set[str]:
    """The function names a Gemini request offers the model."""
    names = set()
    for tool in request.get("tools") or []:
        for declaration in (tool.get("functionDeclarations") or []) if isinstance(tool, dict) else []:
            if isinstance(declaration, dict) and isinstance(declaration.get("name"), str):
                names.add(declaration["name"])
    return names


def gemini_texts(request: dict[str, Any]) -> list[str]:
    """Every text part of a Gemini request's contents, function responses included (as JSON)."""
    texts: list[str] = []
    for content in request.get("contents") or []:
        for part in (content.get("parts") or []) if isinstance(content, dict) else []:
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            if isinstance(part.get("functionResponse"), dict):
                texts.append(json.dumps(part["functionResponse"]))
    return texts


def gemini_turns(report_step: dict[str, Any]) -> list[dict[str, Any]]:
    """The bodies of the streamed (model turn) requests Gemini made during one step."""
    return [request["body"] for request in report_step["requests"] if ":streamGenerateContent" in request["path"]]


MOCK_PORT = 18080  # fixed, for configs that cannot name a port at run time (each namespace is empty)

# Codex (0.169 and 0.171) starts a turn without an MCP server that is not up within a short grace
# (`mcp_optional_startup_grace_ms`): on a loaded test machine the bus, run from the sources, may miss
# the first turn. The tests check what the bus does, not how fast Python starts, so they wait longer.
CODEX_MCP_GRACE_MS = 60000


def codex_mock_config(port: int = MOCK_PORT) -> str:
    """config.toml lines that make every `codex` run (e.g. one `relay wake` starts) use the mock."""
    return (
        f'model_provider = "mock"\nmcp_optional_startup_grace_ms = {CODEX_MCP_GRACE_MS}\n\n'
        '[model_providers.mock]\nname = "mock"\n'
        f'base_url = "http://127.0.0.1:{port}/v1"\nwire_api = "responses"\n'
        "request_max_retries = 0\nstream_max_retries = 0\n"
    )


def codex_provider_args(port: int) -> list[str]:
    """`codex` options that point it at a mock Responses API on 127.0.0.1:`port`."""
    provider = (
        f'{{name="mock",base_url="http://127.0.0.1:{port}/v1",wire_api="responses",'
        "request_max_retries=0,stream_max_retries=0}"
    )
    grace = f"mcp_optional_startup_grace_ms={CODEX_MCP_GRACE_MS}"
    return ["-c", "model_provider=mock", "-c", f"model_providers.mock={provider}", "-c", grace]


def _run_client(step: dict[str, Any], port: int) -> dict[str, Any]:
    argv = [arg.replace("{PORT}", str(port)) for arg in step["argv"]]
    env = {**os.environ, **step.get("env", {})}
    env = {key: value.replace("{PORT}", str(port)) for key, value in env.items()}
    started = time.time()
    try:
        done = subprocess.run(
            argv, cwd=step["cwd"], env=env, capture_output=True, timeout=step.get("timeout", 120), check=False
        )
        rc, out, err = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as expired:
        rc, out, err = "timeout", expired.stdout or b"", expired.stderr or b""
    return {
        "argv": argv,
        "rc": rc,
        "stdout": out.decode(errors="replace"),
        "stderr": err.decode(errors="replace"),
        "started": started,
        "ended": time.time(),
    }


def _claude_step(step: dict[str, Any]) -> dict[str, Any]:
    mock = _Mock(AnthropicHandler, step.get("port", 0))
    # `calls`: [[tool, input], ...] in order; `tool` (+ `tool_input`) is one call.
    calls = step.get("calls") or ([[step["tool"], step.get("tool_input", {})]] if step.get("tool") else [])
    mock.calls = [(name, arguments) for name, arguments in calls]
    mock.start()
    try:
        env = {"ANTHROPIC_BASE_URL": f"http://127.0.0.1:{mock.port}", "ANTHROPIC_API_KEY": "sk-ant-offline-test"}
        result = _run_client({**step, "env": {**env, **step.get("env", {})}}, mock.port)
    finally:
        mock.shutdown()
    return {**result, "requests": mock.requests}


def _drive_turns(step: dict[str, Any], env: dict[str, str], mock: Any, message_of: Any) -> dict[str, Any]:
    """Run `step["argv"]` as one process kept open across `step["turns"]`, writing each prompt to its
    stdin as the JSON line `message_of(prompt)` and awaiting the turn's `result` line on stdout.

    For each turn ({"before": [argv, ...], "prompt": TEXT}) the `before` commands run first (e.g. a
    `send` while the session sits idle between prompts), then the prompt is written. A turn whose
    prompt is None writes nothing and only waits for a result: a turn the session starts by itself
    (an idle session woken by mail). Each turn reports when its prompt was written and where its
    model requests begin in `mock.requests`.
    """
    import queue

    deadline = time.monotonic() + step.get("timeout", 120)
    proc = subprocess.Popen(
        step["argv"], cwd=step["cwd"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    lines: queue.Queue[bytes] = queue.Queue()
    errors: list[bytes] = []

    def pump() -> None:
        for line in proc.stdout or []:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    threading.Thread(target=lambda: errors.extend(proc.stderr or []), daemon=True).start()
    turns, out = [], []
    try:
        for turn in step["turns"]:
            before = [_run_client({"argv": argv, "cwd": step["cwd"]}, 0) for argv in turn.get("before", [])]
            with mock.lock:
                first_request = len(mock.requests)
            assert proc.stdin is not None
            written = time.time()
            if turn.get("prompt") is not None:
                proc.stdin.write(json.dumps(message_of(turn["prompt"])).encode() + b"\n")
                proc.stdin.flush()
            result = None
            while result is None and (left := deadline - time.monotonic()) > 0:
                try:
                    line = lines.get(timeout=left)
                except queue.Empty:
                    break
                out.append(line.decode(errors="replace"))
                with contextlib.suppress(ValueError):
                    parsed = json.loads(line)
                    if isinstance(parsed, dict) and parsed.get("type") == "result":
                        result = parsed
            turns.append({"before": before, "written": written, "first_request": first_request, "result": result})
        assert proc.stdin is not None
        proc.stdin.close()
        rc: Any = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        rc = "timeout"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return {
        "argv": step["argv"],
        "rc": rc,
        "stdout": "".join(out),
        "stderr": b"".join(errors).decode(errors="replace"),
        "turns": turns,
    }


def _claude_turns_step(step: dict[str, Any]) -> dict[str, Any]:
    """One `claude -p --input-format stream-json` process kept open across several turns
    (_drive_turns), against the Anthropic mock."""
    mock = _Mock(AnthropicHandler, step.get("port", 0))
    mock.calls = [(name, arguments) for name, arguments in step.get("calls", [])]
    mock.start()
    env = {
        **os.environ,
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{mock.port}",
        "ANTHROPIC_API_KEY": "sk-ant-offline-test",
        **step.get("env", {}),
    }
    try:
        report = _drive_turns(
            step, env, mock, lambda prompt: {"type": "user", "message": {"role": "user", "content": prompt}}
        )
    finally:
        mock.shutdown()
    return {**report, "requests": mock.requests}


def _codex_step(step: dict[str, Any]) -> dict[str, Any]:
    mock = _Mock(ResponsesHandler, step.get("port", 0))
    mock.js = step.get("js")
    mock.script = step.get("script")
    nested: dict[str, Any] = {}
    if step.get("during_first_request"):
        # Runs while Codex waits for its first model answer: its session is live, its bus is up.
        mock.first_request_hook = lambda: nested.update(_step(step["during_first_request"]))
    mock.start()
    try:
        result = _run_client(step, mock.port)
    finally:
        mock.shutdown()
    return {**result, "requests": mock.requests, "during_first_request": nested or None}


def _qwen_turns_step(step: dict[str, Any]) -> dict[str, Any]:
    """One Qwen Code process (`--input-format stream-json`) kept open across several turns
    (_drive_turns), against a ChatCompletionsMock answering from `script`; every request is reported
    with the time it arrived (`at`)."""
    mock = ChatCompletionsMock(step.get("script"), main_tool=step.get("main_tool")).start()
    env = {
        **os.environ,
        "OPENAI_BASE_URL": mock.base_url,
        "OPENAI_API_KEY": "sk-offline-test",
        "OPENAI_MODEL": "mock",
        **step.get("env", {}),
    }

    def message_of(prompt: str) -> dict[str, Any]:
        content = {"role": "user", "content": prompt}
        return {
            "type": "user",
            "session_id": step.get("session_id", ""),
            "message": content,
            "parent_tool_use_id": None,
        }

    try:
        report = _drive_turns({"timeout": 180, **step}, env, mock, message_of)
    finally:
        mock.stop()
    return {**report, "requests": mock.requests}


def _qwen_step(step: dict[str, Any]) -> dict[str, Any]:
    """One command (`qwen ...`, or a `relay wake` that starts one) run to its end against a
    ChatCompletionsMock answering from `script`; reports when it started and every request."""
    mock = ChatCompletionsMock(step.get("script"), main_tool=step.get("main_tool")).start()
    env = {"OPENAI_BASE_URL": mock.base_url, "OPENAI_API_KEY": "sk-offline-test", "OPENAI_MODEL": "mock"}
    started = time.time()
    try:
        result = _run_client({**step, "env": {**env, **step.get("env", {})}}, mock.port)
    finally:
        mock.stop()
    return {**result, "started": started, "requests": mock.requests}


def _gemini_step(step: dict[str, Any]) -> dict[str, Any]:
    """One `gemini` run against the mock Gemini API (`calls` and `before` as GeminiHandler says)."""
    mock = _Mock(GeminiHandler, step.get("port", 0))
    mock.calls = [(name, arguments) for name, arguments in step.get("calls", [])]
    mock.before = step.get("before", {})
    mock.turns, mock.ran, mock.cwd = 0, [], step["cwd"]
    mock.start()
    try:
        env = {"GOOGLE_GEMINI_BASE_URL": f"http://127.0.0.1:{mock.port}", "GEMINI_API_KEY": "offline-test"}
        result = _run_client({**step, "env": {**env, **step.get("env", {})}}, mock.port)
    finally:
        mock.shutdown()
    return {**result, "requests": mock.requests, "ran": mock.ran}


def _screen_text(raw: bytes) -> str:
    """Terminal output with escape sequences and runs of blanks squeezed out."""
    text = re.sub(rb"\x1b\[[0-9;?<>=]*[A-Za-z~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[()][A-Z0-9]|\x1b[=>]", b" ", raw)
    return re.sub(r"\s+", " ", text.decode(errors="replace"))


def _in_terminal(step: dict[str, Any]) -> tuple[int, int]:
    """Start the step's `argv` in `cwd` on a new pseudo-terminal of 160x50; (its pid, the terminal's fd)."""
    import fcntl
    import pty
    import struct
    import termios

    env = {**os.environ, **step.get("env", {}), "TERM": "xterm-256color"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: become the client
        os.chdir(step["cwd"])
        os.execve(step["argv"][0], step["argv"], env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    return pid, fd


def _tui_trust_step(step: dict[str, Any]) -> dict[str, Any]:
    """Start the interactive `codex` in a pseudo-terminal and do what a user trusting this plugin
    does: type `/hooks`, trust the folder if asked, then "Trust all and continue" for the new hooks.
    Done when config.toml records the trust (or after `timeout` seconds)."""
    import select

    config = Path(step["config"])
    pid, fd = _in_terminal(step)
    raw, answered, scanned = b"", set(), 0
    deadline = time.monotonic() + step.get("timeout", 60)
    trusted = False
    try:
        while time.monotonic() < deadline and not trusted:
            ready, _, _ = select.select([fd], [], [], 0.3)
            if ready:
                try:
                    raw += os.read(fd, 65536)
                except OSError:
                    break
            screen = _screen_text(raw[max(0, scanned - 4000) :])  # the new output, with some overlap
            scanned = len(raw)
            if "Ask Codex to do anything" in screen and "/hooks" not in answered:
                answered.add("/hooks")  # open the hook review (the folder prompt may come first)
                time.sleep(0.5)
                os.write(fd, b"/hooks")
                time.sleep(0.5)
                os.write(fd, b"\r")
            # Answer a prompt only once it has settled: a key sent while it is still drawing is lost.
            if "Trust this folder?" in screen and "folder" not in answered:
                answered.add("folder")
                time.sleep(1.5)
                os.write(fd, b"\r")
            if "Trust all and continue" in screen and "hooks" not in answered:
                answered.add("hooks")
                time.sleep(1.5)
                os.write(fd, b"2")
                time.sleep(1.0)
                os.write(fd, b"\r")
            trusted = "[hooks.state." in (config.read_text() if config.exists() else "")
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(fd)
    return {"trusted": trusted, "answered": sorted(answered), "screen": _screen_text(raw)[-3000:]}


# ---------------------------------------------------------------- OpenCode


def opencode_install(sandbox: Sandbox, plugin: Path, port: int = MOCK_PORT) -> dict[str, str]:
    """Install relay's OpenCode plugin as a user does (`opencode plugin -g <clone>/opencode-plugin`),
    offline, and point the sandbox's project at a mock chat-completions API on 127.0.0.1:`port`.
    The environment the `opencode` runs need.

    OpenCode installs `@opencode-ai/plugin` into each config dir at start; offline it would retry
    the registry for a minute. The pinned package is linked in and recorded as installed."""
    config = sandbox.home / ".config" / "opencode"
    scope = config / "node_modules" / "@opencode-ai"
    scope.mkdir(parents=True, exist_ok=True)
    for package in ("plugin", "sdk"):
        link = scope / package
        if not link.exists():
            link.symlink_to(clients_bin().parent / "@opencode-ai" / package)
    lock = {"packages": {"": {"dependencies": {"@opencode-ai/plugin": pinned_versions()["@opencode-ai/plugin"]}}}}
    (config / "package-lock.json").write_text(json.dumps(lock))
    env = {**sandbox.env(), "OPENCODE_DISABLE_MODELS_FETCH": "1"}
    done = offline(
        [str(clients_bin() / "opencode"), "plugin", "-g", str(plugin / "opencode-plugin")], env, sandbox.project
    )
    if done.returncode != 0:
        raise AssertionError(f"opencode plugin -g failed: {done.stderr.decode(errors='replace')[-2000:]}")
    provider = {
        "npm": "@ai-sdk/openai-compatible",
        "name": "mock",
        "options": {"baseURL": f"http://127.0.0.1:{port}/v1", "apiKey": "offline"},
        "models": {"mock-model": {"name": "mock-model"}},
    }
    project_config = {
        "$schema": "https://opencode.ai/config.json",
        "model": "mock/mock-model",
        "provider": {"mock": provider},
    }
    (sandbox.project / "opencode.json").write_text(json.dumps(project_config))
    return env


def _opencode_step(step: dict[str, Any]) -> dict[str, Any]:
    """Run one command (`opencode run ...`, or a `relay wake` that starts one) with the mock up."""
    mock = ChatCompletionsMock(step.get("calls"), step.get("port", MOCK_PORT)).start()
    started = time.time()
    try:
        result = _run_client(step, mock.port)
    finally:
        mock.stop()
    return {**result, "requests": mock.requests, "befores": mock.befores, "started": started}


def _watching(session_tool: str) -> bool:
    """Is a `relay hook watch <tool>` process running (an idle session's mail watcher)?"""
    wanted = f"hook\0watch\0{session_tool}".encode()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    if wanted in handle.read():
                        return True
            except OSError:
                continue
    return False


def _opencode_tui_step(step: dict[str, Any]) -> dict[str, Any]:
    """The interactive `opencode` in a pseudo-terminal: its first turn (`--prompt`) runs against the
    mock; once the session is idle and relay's watcher waits, `send` runs and the step times how
    long until a model request carries `expect` (the woken turn)."""
    mock = ChatCompletionsMock(step.get("calls"), step.get("port", MOCK_PORT)).start()
    pid, fd = _in_terminal(step)
    screen: list[bytes] = []

    def drain() -> None:  # a terminal nobody reads from would stall the TUI
        with contextlib.suppress(OSError):
            while chunk := os.read(fd, 65536):
                screen.append(chunk)

    threading.Thread(target=drain, daemon=True).start()
    report: dict[str, Any] = {"idle": False, "woken": False, "latency": None}
    try:
        deadline = time.monotonic() + step.get("timeout", 180)
        while time.monotonic() < deadline and not _watching("opencode"):
            time.sleep(0.2)
        report["idle"] = _watching("opencode")
        if report["idle"]:
            started = time.monotonic()
            report["send"] = _run_client({**step, "argv": step["send"]}, mock.port)
            sent = time.monotonic()  # the mail is queued: from here it is relay's and OpenCode's time
            report["send_seconds"] = sent - started
            wake_deadline = time.monotonic() + step.get("wake_timeout", 30)
            while time.monotonic() < wake_deadline and not report["woken"]:
                with mock.lock:
                    bodies = [json.dumps(r["body"]) for r in mock.requests]
                if any(step["expect"] in body for body in bodies):
                    report["woken"], report["latency"] = True, time.monotonic() - sent
                time.sleep(0.05)
            time.sleep(step.get("linger", 3))  # let the woken turn finish
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        mock.stop()
    report["requests"] = mock.requests
    report["screen"] = _screen_text(b"".join(screen))[-3000:]
    return report


def _step(step: dict[str, Any]) -> dict[str, Any]:
    kind = step["kind"]
    if kind == "codex-tui-trust":
        return _tui_trust_step(step)
    if kind == "claude":
        return _claude_step(step)
    if kind == "claude-turns":
        return _claude_turns_step(step)
    if kind == "codex":
        return _codex_step(step)
    if kind == "qwen":
        return _qwen_step(step)
    if kind == "qwen-turns":
        return _qwen_turns_step(step)
    if kind == "gemini":
        return _gemini_step(step)
    if kind == "opencode":
        return _opencode_step(step)
    if kind == "opencode-tui":
        return _opencode_tui_step(step)
    if kind == "plain":
        return _run_client(step, 0)
    raise ValueError(f"unknown step kind {kind!r}")


def _driver() -> int:
    """Entry point inside `unshare -n`: loopback up, run the steps in order, print the report."""
    spec = json.load(sys.stdin)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    report = [_step(step) for step in spec["steps"]]
    json.dump({"steps": report}, sys.stdout)
    return 0


def tool_results(report_step: dict[str, Any]) -> list[str]:
    """All tool-result texts the client sent to the mock model during one step."""
    texts: list[str] = []
    for request in report_step["requests"]:
        texts.extend(_tool_results_in(request["body"]))
    return texts


def model_requests(report_step: dict[str, Any]) -> list[dict[str, Any]]:
    """The bodies of the Messages API calls Claude made during one step (not token counts)."""
    return [
        request["body"]
        for request in report_step["requests"]
        if request["path"].startswith("/v1/messages") and "count_tokens" not in request["path"]
    ]


def offered_tools(report_step: dict[str, Any]) -> set[str]:
    """Names of the tools the client offered the model: those in a request's `tools`, and the
    deferred ones Claude names in its messages (callable_tools)."""
    names: set[str] = set()
    for request in report_step["requests"]:
        names.update(callable_tools(request["body"]))
    return names


def codex_rollouts(sandbox: Sandbox) -> dict[str, Path]:
    """Codex session id -> its rollout file."""
    found = {}
    for path in (sandbox.codex_home / "sessions").rglob("rollout-*.jsonl"):
        match = re.search(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.jsonl$", path.name)
        if match:
            found[match.group(1)] = path
    return found


def exec_output(report_step: dict[str, Any], tag: str) -> Any:
    """The JSON the mock's JavaScript printed after `tag` in Codex's exec tool output."""
    for text in tool_results(report_step):
        for line in text.splitlines():
            if line.startswith(tag + " "):
                return json.loads(line[len(tag) + 1 :])
    raise AssertionError(f"no {tag} line in the tool output Codex sent back: {tool_results(report_step)}")


if __name__ == "__main__":
    raise SystemExit(_driver())
