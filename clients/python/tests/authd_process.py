"""A real authd for the tests: started from its binary on a free port with a private SQLite
database, driven over HTTP and through its command line, and stopped for real."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[3]
PASSWORD = "correct horse battery"


def _pdeathsig() -> Callable[[], None] | None:
    """Linux: a hook that has authd get SIGTERM when the test process dies (a CI timeout), so
    that none is left behind. ``prctl`` is looked up here, before any fork, so that the child
    only calls it."""
    if sys.platform != "linux":
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


_DIE_WITH_THE_TESTS = _pdeathsig()


def authd_binary() -> Path:
    """``$AUTHD_BIN``, else ``<repo>/target/release/authd``; fails the test run if neither
    exists (never a silent skip)."""
    explicit = os.environ.get("AUTHD_BIN")
    path = Path(explicit) if explicit else REPO / "target" / "release" / "authd"
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"no authd binary at {path}: build it with `cargo build --release` in {REPO} "
            "(or point AUTHD_BIN at one)",
            pytrace=False,
        )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


def until(what: str, predicate: Callable[[], object], deadline: float = 10.0, every: float = 0.01):
    """Polls ``predicate`` until it returns something true; fails after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            pytest.fail(f"{what}: not after {deadline} s")
        time.sleep(every)


@dataclass
class Login:
    """One session of a user."""

    email: str
    access: str
    refresh: str
    session_id: str


class Authd:
    """One authd process with its own database in ``workdir``."""

    def __init__(
        self, binary: Path, workdir: Path, env: dict[str, str] | None = None, port: int | None = None
    ) -> None:
        self.binary = binary
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.database_url = f"sqlite://{workdir / 'authd.db'}?mode=rwc"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHD_") and k != "DATABASE_URL"}
        env.update(
            DATABASE_URL=self.database_url,
            AUTHD_LISTEN=f"127.0.0.1:{self.port}",
            AUTHD_RATE_LIMITS="off",
            AUTHD_MAIL_DIR=str(Path(self.database_url.removeprefix("sqlite://").split("?")[0]).parent / "mail"),
            AUTHD_REUSE_GRACE_SECS="0",
            AUTHD_LOG_FORMAT="json",
            RUST_LOG="warn",
        )
        env.update(self.extra_env)
        return env

    def start(self) -> Authd:
        with open(self.workdir / "authd.log", "ab") as log:
            self.process = subprocess.Popen(
                [str(self.binary)],
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                preexec_fn=_DIE_WITH_THE_TESTS,  # noqa: PLW1509 - one prctl call, resolved before the fork
            )
        end = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"authd exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if self.http.get("/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > end:
                self.stop()  # never leave a process behind
                pytest.fail(f"authd did not answer /healthz within 30 s:\n{self.log_tail()}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def close(self) -> None:
        self.stop()
        self.http.close()

    def log_tail(self) -> str:
        try:
            return (self.workdir / "authd.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    # The command line.
    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [str(self.binary), *args],
            env=self.env(),
            capture_output=True,
            check=False,
            timeout=60,
            cwd=self.workdir,
        )
        if done.returncode != 0:
            pytest.fail(f"authd {' '.join(args)} failed ({done.returncode}): {done.stderr.decode()}")
        return done.stdout.decode()

    def service_key(self, name: str = "kit", scope: str = "revocations:read") -> str:
        """A new service key, once authd holds it (it reloads keys every 500 ms)."""
        key = self.cli("service-keys", "create", "--name", name, "--scope", scope).strip()
        assert key.startswith("authd_sk_"), "the key is printed on stdout"
        expected = 200 if "revocations:read" in scope.split(",") else 403
        until(
            "authd holds the new service key",
            lambda: self.feed(key).status_code == expected,
        )
        return key

    def feed(self, key: str) -> httpx.Response:
        return self.http.get("/auth/revocations", headers={"Authorization": f"Bearer {key}"})

    # Users and sessions.
    def register(self, mail: str, password: str = PASSWORD) -> None:
        r = self.http.post("/auth/register", json={"email": mail, "password": password})
        assert r.status_code == 201, r.text

    def login(self, mail: str, password: str = PASSWORD) -> Login:
        r = self.http.post("/auth/login", json={"email": mail, "password": password, "delivery": "body"})
        assert r.status_code == 200, r.text
        body = r.json()
        return Login(mail, body["access_token"], body["refresh_token"], body["session_id"])

    def user(self, mail: str | None = None) -> Login:
        """A new user, logged in once."""
        mail = mail or email()
        self.register(mail)
        return self.login(mail)

    def logout(self, access: str, scope: str = "local") -> None:
        r = self.http.post(f"/auth/logout?scope={scope}", headers=_bearer(access))
        assert r.status_code == 204, r.text

    def delete_session(self, access: str, session_id: str) -> None:
        r = self.http.delete(f"/auth/sessions/{session_id}", headers=_bearer(access))
        assert r.status_code == 204, r.text

    def change_password(self, access: str, current: str, new: str) -> None:
        r = self.http.post(
            "/auth/password",
            json={"current_password": current, "new_password": new},
            headers=_bearer(access),
        )
        assert r.status_code == 204, r.text

    def refresh(self, refresh_token: str) -> httpx.Response:
        return self.http.post("/auth/refresh", json={"refresh_token": refresh_token})

    def jwks_kids(self) -> list:
        return [k["kid"] for k in self.http.get("/.well-known/jwks.json").json()["keys"]]


def _bearer(access: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access}"}
