"""A real, throwaway `redis-server` (Debian's) for the Redis store's tests (docs/redis-store.md).

Each server listens on 127.0.0.1 only, on a port the kernel picked, with a random `requirepass`,
no persistence and its own temporary dir; nothing it writes outlives the test session. The TLS
variant serves `rediss://` with a certificate signed by a throwaway CA made with `openssl`.
"""

import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path


def redis_server_path() -> str | None:
    """The redis-server binary, or None when it is not installed (`.ci/run` installs it)."""
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listened on a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def supports_tls(binary: str) -> bool:
    """Was this redis-server built with TLS? Debian's 7.x is (it links libssl); a build without
    TLS cannot serve `--tls-port`, and the TLS fixture then says so instead of starting."""
    linked = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=10, check=False)
    return "libssl" in linked.stdout


def make_tls_files(directory: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it (openssl, 1 day)."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, capture_output=True, check=True, timeout=60)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=relay-test-ca",
    )
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=x")
    (directory / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
    )
    return {"ca": directory / "ca.crt", "cert": directory / "server.crt", "key": directory / "server.key"}


class RedisServer:
    """One running redis-server; `url` carries its password (never print it)."""

    def __init__(self, directory: Path, tls: bool = False, persist: bool = False) -> None:
        binary = redis_server_path()
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.password = secrets.token_hex(16)
        self.port = free_port()
        self.tls = tls
        self.ca: Path | None = None
        args = [
            binary,
            "--bind",
            "127.0.0.1",
            "--protected-mode",
            "yes",
            "--requirepass",
            self.password,
            "--dir",
            str(directory),
            "--save",
            "",
            "--appendonly",
            "yes" if persist else "no",
            "--appendfsync",
            "always",
            "--databases",
            "16",
            "--logfile",
            str(directory / "redis.log"),
        ]
        if tls:
            files = make_tls_files(directory)
            self.ca = files["ca"]
            args += [
                "--port",
                "0",
                "--tls-port",
                str(self.port),
                "--tls-cert-file",
                str(files["cert"]),
                "--tls-key-file",
                str(files["key"]),
                "--tls-ca-cert-file",
                str(files["ca"]),
                "--tls-auth-clients",
                "no",
            ]
        else:
            args += ["--port", str(self.port)]
        # The password reaches the server on its argv; ps shows it only to this user's processes
        # on a throwaway test server, which is acceptable here and nowhere else.
        self._args = args
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, cwd=directory)
        self._wait_ready()

    def start(self) -> None:
        """Start it again on the same port, password and dir (after `stop`; with `persist` its data is back)."""
        (self.directory / "redis.log").unlink(missing_ok=True)
        self.process = subprocess.Popen(
            self._args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, cwd=self.directory
        )
        self._wait_ready()

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://:{self.password}@127.0.0.1:{self.port}/0"

    def url_for(self, db: int = 0, password: str | None = None) -> str:
        """The URL of database `db`, optionally with another password (for the wrong-password tests)."""
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://:{self.password if password is None else password}@127.0.0.1:{self.port}/{db}"

    def _wait_ready(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
                log = (self.directory / "redis.log").read_text(errors="replace")
                if "Ready to accept connections" in log:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not start within {timeout} s")

    def client(self, db: int = 0):  # type: ignore[no-untyped-def]
        """A redis-py client of this server (for setup and inspection in tests)."""
        import redis

        kwargs: dict[str, object] = {}
        if self.tls:
            kwargs["ssl_ca_certs"] = str(self.ca)
        return redis.Redis.from_url(self.url_for(db), socket_timeout=5, **kwargs)

    def flush(self) -> None:
        """Empty every database, so one test's keys never reach the next."""
        with self.client() as client:
            client.flushall()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
