"""`relay ui`: a local web page of the conversation (docs/webview.md), standard library only.

The server listens on 127.0.0.1 only and answers nothing without the random token the printed URL
holds: not the page, not the JSON, not the event stream, not a send. It also refuses a request whose
Host header is not this address (a rebound DNS name would carry another), and a send that is not
JSON with the token in a header or in the body (a form on another site can send neither). The page
is inline (relay.faces.webview_page), runs under a content security policy that allows only its own
script and style, and puts every text it shows in the page as text, never as markup.

The page follows a server-sent event stream that carries the whole view (relay.usecases.overview)
each time it changes, read from the store at most every REFRESH seconds whoever asks; a person's
message goes through relay.usecases.conversation.send_and_ring, as `relay send` does, from `user`.
"""

import hmac
import os
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from relay.faces.argv import Parsed
from relay.util.errors import RelayError, UsageError
from relay.util.jsonlite import decode, encode

TYPE_CHECKING = False  # typing stays off the import path; only mypy reads this
if TYPE_CHECKING:
    from relay.store.contract import StoreAPI

HOST = "127.0.0.1"
SENDER = "user"  # who a message sent from the page is from
REFRESH = 0.5  # seconds: the view is read from the store at most this often, so new events show within a second
KEEPALIVE = 15.0  # seconds between two comments on an idle event stream, so a dead reader is noticed
MAX_POST = 64 * 1024  # bytes: a message's body is at most 24 KiB of UTF-8, escaped in JSON
TOKEN_HEADER = "X-Relay-Token"


class View:
    """The view the page shows, shared by every request: the store is read under one lock, at most
    every REFRESH seconds, and each change gets a new version number."""

    def __init__(self, store: "StoreAPI") -> None:
        from relay.usecases.overview import Conversation

        self.store = store
        self.lock = threading.Lock()
        self.conversation = Conversation()
        self.read_at = 0.0
        self.version = 0
        self.body = b""
        self.shown: dict[str, object] = {"sessions": [], "threads": [], "journal": True, "sender": SENDER}

    def current(self) -> tuple[int, bytes]:
        """(version, the view as JSON), read again when it is older than REFRESH seconds."""
        with self.lock:
            if time.monotonic() - self.read_at >= REFRESH or not self.body:
                self._read()
            return self.version, self.body

    def _read(self) -> None:
        """Read the view again; when the store fails, the last view stays, with the failure's one line
        as `error` (an unexpected one's traceback goes to the error log), and the next read tries again."""
        from relay.usecases import journal
        from relay.usecases.overview import sessions

        try:
            self.conversation.refresh(self.store)
            self.shown = {
                "sessions": sessions(self.store),
                "threads": self.conversation.threads(),
                "journal": journal.journal_days() > 0,
                "sender": SENDER,
            }
        except Exception as err:
            from relay.faces.boundary import described

            self.shown = {**self.shown, "error": described("cli ui", err)[0]}
        body = encode(self.shown)
        if body != self.body:
            self.body, self.version = body, self.version + 1
        self.read_at = time.monotonic()

    def send(self, request: object) -> dict[str, object]:
        """Queue a person's message {to, body, replyTo?} as `relay send` does; the new message's ids."""
        from relay.usecases.conversation import send_and_ring
        from relay.usecases.mail import thread_of

        if not isinstance(request, dict):
            raise UsageError("send needs a JSON object {to, body, replyTo}")
        to, body, reply_to = request.get("to"), request.get("body"), request.get("replyTo")
        if not isinstance(to, str) or not to.strip():
            raise UsageError("send needs `to`: a session's name or id")
        if not isinstance(body, str):
            raise UsageError("send needs `body`: the message text")
        if reply_to is not None and not isinstance(reply_to, str):
            raise UsageError("replyTo must be a message id")
        with self.lock:
            if reply_to:
                from relay.usecases.addressing import message_id_of

                reply_to = message_id_of(self.store, reply_to, None)
            sent = send_and_ring(self.store, to.strip(), body, None, SENDER, reply_to=reply_to or None)
            self.read_at = 0.0  # the next read shows it
        from relay.usecases.conversation import state_line

        message, state = sent.message, sent.recipient_state()["state"]
        return {
            "id": message["id"],
            "thread": thread_of(message),
            "to": message["to"],
            "toName": message["toName"],
            "recipient": state,
            "note": sent.note or state_line(sent.recipient, state),
        }


class Handler(BaseHTTPRequestHandler):
    """One request: checked (Host, token), then answered. Set on the class by `serve`."""

    view: View
    token: str
    hosts: tuple[str, ...]
    protocol_version = "HTTP/1.1"
    server_version = "relay-ui"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:
        """Requests are not logged: the URLs carry the token."""

    def _refuse(self, status: int, reason: str) -> None:
        self._reply(status, "text/plain; charset=utf-8", f"{reason}\n".encode())

    def _reply(self, status: int, kind: str, body: bytes, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self._common_headers(extra)
        self.wfile.write(body)

    def _common_headers(self, extra: dict[str, str] | None = None) -> None:
        for name, value in {
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY",
            **(extra or {}),
        }.items():
            self.send_header(name, value)
        self.end_headers()

    def _allowed(self, token: str | None) -> bool:
        """The Host is this server's address and `token` is the server's; else a 403 was sent."""
        if self.headers.get("Host", "") not in self.hosts:
            self._refuse(403, "forbidden: wrong Host header")
            return False
        if token is None or not hmac.compare_digest(token.encode("utf-8", "replace"), self.token.encode()):
            self._refuse(403, "forbidden: a missing or wrong token")
            return False
        return True

    def _query_token(self) -> tuple[str, str | None]:
        url = urlsplit(self.path)
        values = parse_qs(url.query).get("token")
        return url.path, (values[0] if values and len(values) == 1 else None)

    def do_GET(self) -> None:
        path, token = self._query_token()
        if not self._allowed(self.headers.get(TOKEN_HEADER) or token):
            return
        if path == "/":
            from relay.faces.webview_page import page

            nonce = secrets.token_urlsafe(16)
            policy = (
                f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; "
                "img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
            )
            self._reply(200, "text/html; charset=utf-8", page(nonce), {"Content-Security-Policy": policy})
        elif path == "/api/view":
            self._reply(200, "application/json", self.view.current()[1])
        elif path == "/api/events":
            self._stream()
        else:
            self._refuse(404, "not found")

    def _stream(self) -> None:
        """Server-sent events: the whole view as one `view` event now and at each change, until the reader goes."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.close_connection = True
        self._common_headers()
        shown, quiet_since = -1, time.monotonic()
        try:
            while True:
                version, body = self.view.current()
                if version != shown:
                    self.wfile.write(b"event: view\ndata: " + body + b"\n\n")
                    shown, quiet_since = version, time.monotonic()
                elif time.monotonic() - quiet_since >= KEEPALIVE:
                    self.wfile.write(b": keepalive\n\n")
                    quiet_since = time.monotonic()
                self.wfile.flush()
                time.sleep(REFRESH)
        except OSError:  # the page was closed or reloaded
            return

    def do_POST(self) -> None:
        self.close_connection = True  # a refused request's body may be left unread: never reuse the connection
        path, _ = self._query_token()
        length = self.headers.get("Content-Length", "")
        raw = self.rfile.read(int(length)) if length.isdigit() and int(length) <= MAX_POST else None
        request = _json(raw)
        body_token = request.get("token") if isinstance(request, dict) else None
        if not self._allowed(self.headers.get(TOKEN_HEADER) or (body_token if isinstance(body_token, str) else None)):
            return
        if path != "/api/send":
            self._refuse(404, "not found")
            return
        kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            self._refuse(415, "send needs Content-Type: application/json")
            return
        if raw is None:
            self._refuse(413, f"send needs a body of at most {MAX_POST} bytes")
            return
        try:
            answer, status = self.view.send(request), 200
        except RelayError as err:
            answer, status = {"error": str(err)}, 400
        except Exception as err:  # one line for the page; an unexpected error's traceback goes to the error log
            from relay.faces.boundary import described

            answer, status = {"error": described("cli ui", err)[0]}, 500
        self._reply(status, "application/json", encode(answer))


def _json(raw: bytes | None) -> object:
    if raw is None:
        return None
    try:
        return decode(raw)
    except ValueError:
        return None


def _port(parsed: Parsed) -> int:
    raw = parsed.options.get("--port")
    if raw is None:
        return 0
    if not raw.isdigit() or len(raw) > 5 or int(raw) > 65535:
        raise UsageError(f"--port needs a port number from 0 to 65535, not {raw[:40]!r}")
    return int(raw)


def _open_browser(url: str) -> None:
    """Hand the URL to xdg-open when there is a display to show it on; say nothing when that fails."""
    import shutil
    import subprocess

    opener = shutil.which("xdg-open")
    if opener is None or not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return
    try:
        subprocess.Popen(
            [opener, url],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        return


def main(store: "StoreAPI", parsed: Parsed) -> int:
    """`relay ui`: serve the page on 127.0.0.1 and print its URL, until SIGINT or SIGTERM (exit 0)."""
    port = _port(parsed)
    import signal

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # Set here, not inherited: a shell starts a background job with SIGINT ignored.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    try:
        server = _listen(port)
        try:
            _serve(server, store, "--no-open" not in parsed.flags)
        finally:
            server.server_close()
    except KeyboardInterrupt:
        pass
    return 0


class Server(ThreadingHTTPServer):
    daemon_threads = True  # an open event stream does not hold up the stop

    def handle_error(self, request: object, client_address: object) -> None:
        """A reader that went away is nothing to report; anything else goes to the error log, not the terminal."""
        import sys

        err = sys.exc_info()[1]
        if isinstance(err, Exception) and not isinstance(err, OSError):
            from relay.store import errorlog

            errorlog.record("cli ui", err)


def _listen(port: int) -> ThreadingHTTPServer:
    try:
        server = Server((HOST, port), Handler, bind_and_activate=False)
        server.allow_reuse_address = False
        server.server_bind()
        server.server_activate()
    except OSError as err:
        raise RelayError(f"cannot listen on {HOST}:{port}: {err.strerror or err}") from None
    return server


def _serve(server: ThreadingHTTPServer, store: "StoreAPI", open_it: bool) -> None:
    """Print the URL (with a fresh token), then answer requests until a signal stops it."""
    bound = server.server_address[1]
    token = secrets.token_urlsafe(32)
    hosts = (f"{HOST}:{bound}", f"localhost:{bound}")
    server.RequestHandlerClass = type("BoundHandler", (Handler,), {"view": View(store), "token": token, "hosts": hosts})
    url = f"http://{HOST}:{bound}/?token={token}"
    print(url, flush=True)
    if open_it:
        _open_browser(url)
    from relay.faces.boundary import long_lived

    long_lived()
    server.serve_forever(poll_interval=0.5)
