"""Start the stand-in mobile operator (connectors/oidc/sandbox/operator.mjs, panva's certified
oidc-provider) as a subprocess, for the tests and the demo.

    handle = start_operator(0, "nixa", "secret", ["http://127.0.0.1:8000/login/callback/operator"])
    ... handle.issuer ...
    handle.stop()

or in the foreground: `python -m connectors.oidc.sandbox --port 9100 --client-id nixa
--client-secret secret --redirect-uri http://127.0.0.1:8000/login/callback/operator`.
The npm packages are installed from the committed lockfile on first use (`npm ci`).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from connectors.sandbox_process import die_with_parent

SANDBOX_DIR = Path(__file__).resolve().with_name("sandbox")
NPM_TIMEOUT = 300.0
READY_TIMEOUT = 20.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _installed() -> bool:
    return (SANDBOX_DIR / "node_modules" / "oidc-provider" / "package.json").is_file()


def ensure_node_modules(timeout: float = NPM_TIMEOUT) -> None:
    """`npm ci` from the lockfile when node_modules is missing; one installer at a time."""
    if _installed():
        return
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise RuntimeError("node and npm are needed for the OIDC operator sandbox (Node.js 18 or later)")
    lock_name = "nixa-oidc-sandbox-" + hashlib.sha256(str(SANDBOX_DIR).encode()).hexdigest()[:12] + ".lock"
    with open(Path(tempfile.gettempdir()) / lock_name, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test workers: the first installs, others wait
        if _installed():
            return
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=SANDBOX_DIR,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0 or not _installed():
            raise RuntimeError(f"npm ci failed in {SANDBOX_DIR}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


@dataclass
class OperatorHandle:
    issuer: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    _config_path: Path = field(repr=False)

    @property
    def discovery_url(self) -> str:
        return self.issuer + "/.well-known/openid-configuration"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        for path in (self._config_path, self.log_path):
            with contextlib.suppress(OSError):
                path.unlink()

    def __enter__(self) -> OperatorHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_operator(
    port: int,
    client_id: str,
    client_secret: str,
    redirect_uris: Iterable[str],
    *,
    host: str = "127.0.0.1",
    token_endpoint_auth_method: str = "client_secret_basic",
    extra_clients: Iterable[Mapping[str, Any]] = (),
    post_logout_redirect_uris: Iterable[str] = (),
    subscriber_salt: str = "nixa-sandbox-operator",
    ready_timeout: float = READY_TIMEOUT,
) -> OperatorHandle:
    """Run the operator on `host:port` (0: a free port) with the NIXA client registered; return
    once its discovery document answers. `extra_clients` are oidc-provider client metadata
    (e.g. a private_key_jwt client with `jwks`); `post_logout_redirect_uris` are where the
    operator's RP-Initiated Logout may send the browser back to (NIXA's /logout/upstream)."""
    ensure_node_modules()
    port = port or free_port(host)
    issuer = f"http://{host}:{port}"
    clients = [
        {
            "client_id": client_id,
            "client_secret": client_secret,
            "redirect_uris": list(redirect_uris),
            "post_logout_redirect_uris": list(post_logout_redirect_uris),
            "token_endpoint_auth_method": token_endpoint_auth_method,
        },
        *[dict(c) for c in extra_clients],
    ]
    config = {"host": host, "port": port, "issuer": issuer, "subscriber_salt": subscriber_salt, "clients": clients}
    fd, config_name = tempfile.mkstemp(prefix="nixa-operator-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(config, fh)
    log_fd, log_name = tempfile.mkstemp(prefix="nixa-operator-", suffix=".log")
    process = subprocess.Popen(
        [shutil.which("node") or "node", "operator.mjs", "--config", config_name],
        cwd=SANDBOX_DIR,
        stdin=subprocess.DEVNULL,
        stdout=log_fd,
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
    )
    os.close(log_fd)
    handle = OperatorHandle(issuer, port, process, Path(log_name), Path(config_name))
    try:
        _wait_ready(handle, ready_timeout)
    except BaseException:
        log = handle.log()
        handle.stop()
        raise RuntimeError(f"operator sandbox did not start on {issuer}:\n{log}") from None
    with contextlib.suppress(OSError):
        handle._config_path.unlink()  # read at start-up; no client secret left lying in /tmp
    return handle


def _wait_ready(handle: OperatorHandle, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if handle.process.poll() is not None:
                raise RuntimeError("exited")
            with contextlib.suppress(httpx.HTTPError):
                response = client.get(handle.discovery_url)
                if response.status_code == 200 and response.json().get("issuer") == handle.issuer:
                    return
            time.sleep(0.05)
    raise TimeoutError("discovery did not answer")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="NIXA's stand-in mobile operator OpenID provider")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--client-id", default="nixa")
    parser.add_argument("--client-secret", default="nixa-operator-sandbox-secret")
    parser.add_argument("--redirect-uri", action="append", default=[])
    args = parser.parse_args(argv)
    redirect_uris = args.redirect_uri or ["http://127.0.0.1:8000/login/callback/operator"]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # run the finally below on SIGTERM
    handle = start_operator(args.port, args.client_id, args.client_secret, redirect_uris, host=args.host)
    print(f"operator sandbox: {handle.issuer} (client {args.client_id})", flush=True)
    try:
        handle.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        handle.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
