"""Interop fixtures: a real browser stand-in (httpx with a cookie jar) against the live NIXA, and
the openid-client relying party (tests/interop/node/rp.mjs) as a JSON-lines subprocess."""

from __future__ import annotations

import json
import os
import selectors
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from tests.conftest import Citizen, form_action, hidden

NODE_DIR = Path(__file__).parent / "node"


class Browser:
    """A user agent: follows NIXA's own redirects, fills the login and consent forms, and stops at
    the first redirect that leaves NIXA (the relying party's unserved redirect_uri)."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self.client = httpx.Client(follow_redirects=False, timeout=10)

    def close(self) -> None:
        self.client.close()

    def _leaves_nixa(self, url: str) -> bool:
        return not url.startswith(self.issuer + "/")

    def _follow(self, response: httpx.Response) -> tuple[str | None, httpx.Response]:
        """Follow same-origin redirects (bounded); return (external URL or None, last response)."""
        for _ in range(10):
            if response.status_code not in (302, 303, 307):
                return None, response
            target = urljoin(str(response.url), response.headers["location"])
            if self._leaves_nixa(target):
                return target, response
            response = self.client.get(target)
        raise AssertionError("too many redirects inside NIXA")

    def sign_in(self, authorization_url: str, citizen: Citizen) -> str:
        """Open the authorization URL, sign in with the local password form, allow consent;
        return the URL NIXA redirects the browser to (the callback at the relying party)."""
        external, page = self._follow(self.client.get(authorization_url))
        if external:
            return external
        assert page.status_code == 200, page.text
        r = self.client.post(urljoin(str(page.url), form_action(page.text, "/local")),
                             data={"csrf": hidden(page.text, "csrf"), "username": citizen.username, "password": citizen.password})
        assert r.status_code == 303, r.text
        external, page = self._follow(r)
        if external:
            return external
        assert page.status_code == 200 and "/consent" in page.text, page.text
        r = self.client.post(urljoin(str(page.url), form_action(page.text, "/consent")),
                             data={"csrf": hidden(page.text, "csrf"), "decision": "allow"})
        assert r.status_code == 303, r.text
        external, page = self._follow(r)
        assert external, f"NIXA did not redirect back to the relying party: {page.status_code} {page.text[:500]}"
        return external

    def visit(self, url: str) -> tuple[str | None, httpx.Response]:
        """GET a URL; return (the external redirect target or None, the last response)."""
        return self._follow(self.client.get(url))


@pytest.fixture()
def user_agent(live):  # noqa: ANN001, ANN201
    b = Browser(live.url)
    yield b
    b.close()


# ---- openid-client (node) -----------------------------------------------------------------------


def _node() -> str:
    node = shutil.which("node")
    assert node, "node is required for the openid-client interop tests (scripts/bootstrap.sh installs it)"
    return node


def ensure_node_modules(folder: Path = NODE_DIR) -> None:
    """Install the pinned npm packages of `folder` when missing, so a direct pytest run works."""
    if (folder / "node_modules" / "openid-client" / "package.json").exists():
        return
    npm = shutil.which("npm")
    assert npm, "npm is required to install openid-client (scripts/bootstrap.sh installs it)"
    cmd = [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"]
    done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"


class NodeRP:
    """One openid-client relying party process; `call(op, **args)` sends a command, returns the reply."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([_node(), str(NODE_DIR / "rp.mjs")], cwd=NODE_DIR, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
                                     env={**os.environ, "NODE_NO_WARNINGS": "1"})
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)

    def call(self, op: str, timeout: float = 20, **args) -> dict:
        assert self.proc.poll() is None, f"rp.mjs exited: {self.proc.stderr.read()}"
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while not self.selector.select(timeout=max(0.0, deadline - time.monotonic())):
            if time.monotonic() >= deadline:
                raise AssertionError(f"rp.mjs: no answer to {op} within {timeout}s")
        line = self.proc.stdout.readline()
        assert line, f"rp.mjs exited during {op}: {self.proc.stderr.read()}"
        return json.loads(line)

    def ok(self, op: str, **args) -> dict:
        reply = self.call(op, **args)
        assert reply.pop("ok") is True, f"openid-client {op} failed: {json.dumps(reply, ensure_ascii=False, indent=1)}"
        return reply

    def close(self) -> None:
        self.selector.close()
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


@pytest.fixture(scope="session")
def node_modules() -> Path:
    ensure_node_modules()
    return NODE_DIR / "node_modules"


@pytest.fixture()
def node_rp(node_modules):  # noqa: ANN001, ANN201
    rp = NodeRP()
    yield rp
    rp.close()
