"""Start a connector's sandbox as its own process on a free loopback port, for tests.

    with running_sandbox("connectors.telecom.sandbox", "--api-key", KEY) as sandbox:
        sandbox.base_url  # http://127.0.0.1:<port>, /health already answered 200
        sandbox.stop()    # an outage, when a test wants one

The process is always stopped when the block ends.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sandbox:
    def __init__(self, module: str, args: tuple[str, ...], health_timeout: float, port: int | None = None) -> None:
        self.module = module
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._log = tempfile.TemporaryFile()
        command = [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", str(self.port), *args]
        self.process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_healthy(health_timeout)

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.module} exited with {self.process.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.module} did not answer /health within {timeout} s:\n{self.output()}")

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    # Fault injection and counters every sandbox offers (connectors/telecom/sandbox_support.py).

    def set_faults(self, *, delay_ms: int = 0, fail_status: int = 0, count: int | None = None) -> None:
        body = {"delay_ms": delay_ms, "fail_status": fail_status, "count": count}
        httpx.post(f"{self.base_url}/_sandbox/faults", json=body, timeout=5).raise_for_status()

    def clear_faults(self) -> None:
        httpx.delete(f"{self.base_url}/_sandbox/faults", timeout=5).raise_for_status()

    def requests_served(self) -> int:
        return httpx.get(f"{self.base_url}/_sandbox/stats", timeout=5).json()["requests"]


@contextmanager
def running_sandbox(module: str, *args: str, health_timeout: float = 60, port: int | None = None) -> Iterator[Sandbox]:
    sandbox = Sandbox(module, args, health_timeout, port)
    try:
        yield sandbox
    finally:
        sandbox.stop()
        sandbox._log.close()
