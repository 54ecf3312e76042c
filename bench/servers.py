"""The processes the benchmark measures: NIXA (`nixa serve`), the reference (panva's
oidc-provider, bench/reference/server.mjs) and the two framework ceilings (bench/ceiling.py on
uvicorn, bench/reference/ceiling.mjs on Node). Each runs in its own session (process group),
pinned to the server's cores from its first instruction, and is stopped by that group id."""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
START_TIMEOUT = 60.0  # seconds for a server to answer its health path
STOP_TIMEOUT = 15.0
NPM_TIMEOUT = 300.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A server on 127.0.0.1:`port`, its output in `log`, pinned to `cores` (None: not pinned)."""

    def __init__(self, name: str, cmd: list[str], port: int, log: Path, *, cwd: Path = ROOT, env: dict[str, str] | None = None,
                 cores: frozenset[int] | None = None, health: str = "/health") -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.health = health
        self._fh = log.open("wb")
        pin = functools.partial(os.sched_setaffinity, 0, cores) if cores else None
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=self._fh, stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=pin)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        with httpx.Client(timeout=2.0, trust_env=False) as c:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
                try:
                    if c.get(self.url + self.health).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer {self.health} within {START_TIMEOUT:.0f}s:\n{self.tail()}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 30) -> str:
        if not self._fh.closed:
            self._fh.flush()
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left of its process group (uvicorn workers), by the group id we created.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=STOP_TIMEOUT)
        self._fh.close()


def nixa_server(env: dict[str, str], port: int, workers: int, log: Path, cores: frozenset[int] | None) -> ServerProcess:
    cmd = [sys.executable, "-m", "admin.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    return ServerProcess(f"nixa serve ({workers} worker(s))", cmd, port, log, env=env, cores=cores)


# ---- the reference ---------------------------------------------------------------------------------


def node() -> str:
    found = shutil.which("node")
    if not found:
        raise RuntimeError("the reference needs Node.js (node and npm on PATH); run scripts/bootstrap.sh, or pass --no-reference")
    return found


def ensure_reference() -> str:
    """Install bench/reference's locked packages when they are missing or older than the lock
    file; returns the installed oidc-provider version."""
    import fcntl

    node()
    modules = REFERENCE_DIR / "node_modules"
    lock = REFERENCE_DIR / "package-lock.json"
    # One install at a time (the two runs of `make test` go side by side): the second waits,
    # then finds the packages there.
    with open(REFERENCE_DIR / ".install.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        return _install_reference(modules, lock)


def _install_reference(modules: Path, lock: Path) -> str:
    if not modules.is_dir() or lock.stat().st_mtime > modules.stat().st_mtime:
        npm = shutil.which("npm")
        if not npm:
            raise RuntimeError("the reference needs npm to install oidc-provider; or pass --no-reference")
        print("  npm ci in bench/reference (oidc-provider, once)...", flush=True)
        r = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=REFERENCE_DIR, capture_output=True,
                           text=True, timeout=NPM_TIMEOUT)
        if r.returncode != 0:
            raise RuntimeError(f"npm ci in bench/reference failed:\n{r.stdout}\n{r.stderr}")
        modules.touch()
    return json.loads((modules / "oidc-provider" / "package.json").read_text())["version"]


def reference_config(issuer: str, port: int, clients: dict, citizens: list[dict], resource: str, opaque_resource: str,
                     scope: str) -> dict:
    """bench/reference/server.mjs's configuration: the clients NIXA was seeded with (same ids
    and secrets), the same citizens and the same API."""
    return {
        "issuer": issuer,
        "host": "127.0.0.1",
        "port": port,
        "clients": [
            {"client_id": "bench-web", "client_secret": clients["bench-web"], "redirect_uris": [clients["redirect_uri"]],
             "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
             "token_endpoint_auth_method": "client_secret_basic", "scope": "openid profile email"},
            {"client_id": "bench-service", "client_secret": clients["bench-service"], "grant_types": ["client_credentials"],
             "response_types": [], "redirect_uris": [], "token_endpoint_auth_method": "client_secret_basic", "scope": scope},
            {"client_id": "bench-api", "client_secret": clients["bench-api"], "grant_types": ["client_credentials"],
             "response_types": [], "redirect_uris": [], "token_endpoint_auth_method": "client_secret_basic"},
        ],
        "resource": {"indicator": resource, "opaque_indicator": opaque_resource, "scope": scope},
        "citizens": [{"username": c["username"], "password": c["password"], "claims": c["claims"]} for c in citizens],
    }


def reference_server(config: dict, tmp: Path, cores: frozenset[int] | None) -> ServerProcess:
    path = tmp / "reference.json"
    path.write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    path.chmod(0o600)  # it holds the clients' secrets
    return ServerProcess("oidc-provider", [node(), "server.mjs", "--config", str(path)], config["port"], tmp / "reference.log",
                         cwd=REFERENCE_DIR, cores=cores)


# ---- the framework ceilings ------------------------------------------------------------------------


def starlette_ceiling(port: int, log: Path, cores: frozenset[int] | None) -> ServerProcess:
    # uvicorn as `nixa serve` runs it (admin/cli.py): its defaults pick uvloop and httptools.
    cmd = [sys.executable, "-m", "uvicorn", "bench.ceiling:app", "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning", "--no-proxy-headers"]
    return ServerProcess("Starlette ceiling", cmd, port, log, cores=cores)


def node_ceiling(port: int, log: Path, cores: frozenset[int] | None) -> ServerProcess:
    return ServerProcess("Node ceiling", [node(), "ceiling.mjs", "--port", str(port)], port, log, cwd=REFERENCE_DIR, cores=cores)
