"""The sandbox as its own process: `python -m connectors.ldap.sandbox`, ready line, clean stop."""

from __future__ import annotations

import ctypes
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

from connectors.base import ConnectorContext
from connectors.ldap.connector import LdapConnector
from connectors.ldap.sandbox import free_port
from idp.store.ephemeral import MemoryStore

REPO = Path(__file__).resolve().parents[3]
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def _read_line(process: subprocess.Popen, timeout: float) -> str:
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    try:
        if not selector.select(timeout):
            raise AssertionError(f"no ready line within {timeout}s")
        return process.stdout.readline()
    finally:
        selector.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose (its parent, the sandbox, reaps it).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_sandbox_process_serves_the_directory_and_stops_slapd_on_sigterm(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "connectors.ldap.sandbox", "--host", "127.0.0.1", "--port", str(port), "--dir", str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = json.loads(_read_line(process, 20))
        assert ready["url"] == f"ldap://127.0.0.1:{port}"
        assert json.loads((tmp_path / "sandbox.json").read_text())["connector_config"] == ready["connector_config"]
        slapd_pid = int((tmp_path / "slapd.pid").read_text())

        connector = LdapConnector(ConnectorContext("mof", ready["connector_config"], MemoryStore()))
        assertion = connector.login({"username": "levancuong", "password": "Cuong@Demo2024"})
        assert assertion.value("name") == "Lê Văn Cường"
        assert assertion.value("roles") == ["can-bo-thue", "ke-toan"]

        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
        deadline = time.monotonic() + 10
        while _alive(slapd_pid):
            assert time.monotonic() < deadline, "slapd still running after the sandbox stopped"
            time.sleep(0.05)
        assert connector.health().ok is False
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        process.stdout.close()
        process.stderr.close()


def test_sandbox_reports_a_port_in_use(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "connectors.ldap.sandbox", "--port", str(port), "--dir", str(tmp_path), "--timeout", "5"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert "ldap sandbox:" in result.stderr


def test_slapd_dies_with_a_killed_sandbox(tmp_path):
    """Even a SIGKILLed sandbox (no chance to clean up) leaves no slapd behind (PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL(None, use_errno=True)
    # Become the orphaned slapd's new parent, so this test reaps it instead of leaving a zombie.
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1)
    process = subprocess.Popen(
        [sys.executable, "-m", "connectors.ldap.sandbox", "--port", "0", "--dir", str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        json.loads(_read_line(process, 20))
        slapd_pid = int((tmp_path / "slapd.pid").read_text())
        assert _alive(slapd_pid)
        process.kill()
        process.wait(10)
        deadline = time.monotonic() + 10
        while os.waitpid(slapd_pid, os.WNOHANG) == (0, 0):
            assert time.monotonic() < deadline, "slapd outlived its killed parent"
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        process.stdout.close()
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0)
