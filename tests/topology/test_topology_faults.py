"""Faults on the real servers of the topology: the run's Redis (append-only file, see
scripts/services.sh) and PostgreSQL are stopped and started again under a light, bounded load
while both workers keep running. Run last in this folder: they take the shared stores down."""

from __future__ import annotations

import glob
import http.client
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
import redis
from sqlalchemy import create_engine, text

from tests.conftest import DB_URL, REDIS_URL, authorize, code_flow, form_action, hidden, make_citizen, pkce_pair, query_of, register_client, sign_in_local
from tests.oidc.test_audit import events_for

pytestmark = pytest.mark.scale_out

REQUEST_TIMEOUT = 20  # what the load's client waits at most for one answer


@dataclass
class Load:
    """A light load (one request at a time, at most `limit`) until stopped: statuses and latencies."""

    send: object
    limit: int = 400
    statuses: list[int] = field(default_factory=list)
    slowest: float = 0.0
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set() and len(self.statuses) + len(self.errors) < self.limit:
            started = time.monotonic()
            try:
                self.statuses.append(self.send())
            except httpx.HTTPError as exc:
                self.errors.append(type(exc).__name__)
            self.slowest = max(self.slowest, time.monotonic() - started)
            time.sleep(0.02)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=REQUEST_TIMEOUT + 5)


def redis_restart(down_for: float, during=None) -> None:  # noqa: ANN001
    """SHUTDOWN the run's Redis (its append-only file is flushed) and start it again on the same
    port, folder, file and pid file after `down_for` seconds, calling `during()` meanwhile."""
    conn = redis.Redis.from_url(REDIS_URL)
    config = {k: v for k, v in conn.config_get("*").items() if k in ("port", "dir", "pidfile", "logfile", "appendonly", "appendfilename")}
    assert config["appendonly"] == "yes", "the test Redis keeps no append-only file (scripts/services.sh)"
    try:
        conn.shutdown()
    except redis.ConnectionError:
        pass  # the server closed the connection as it went down
    deadline = time.monotonic() + down_for
    try:
        if during:
            during()
        time.sleep(max(0.0, deadline - time.monotonic()))
    finally:  # back up whatever `during` found, for the tests after this one
        _start_redis(config)


def _start_redis(config: dict) -> None:
    subprocess.run(["redis-server", "--bind", "127.0.0.1", "--port", config["port"], "--save", "", "--appendonly", "yes",
                    "--appendfsync", "everysec", "--dir", config["dir"], "--daemonize", "yes", "--pidfile", config["pidfile"],
                    "--logfile", config["logfile"]], check=True, timeout=20)
    for _ in range(200):
        try:
            if redis.Redis.from_url(REDIS_URL).ping():
                return
        except redis.ConnectionError:
            time.sleep(0.05)
    raise AssertionError("Redis did not come back")


def keep_alive_survives(worker_url: str, path: str) -> tuple[int, str | None, bool]:
    """On one HTTP/1.1 connection straight to a worker: GET `path` (which needs the store that
    is down), then /healthz. (status of the first, its Retry-After, the second on the same socket)."""
    parts = urlsplit(worker_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=REQUEST_TIMEOUT)
    try:
        conn.request("GET", path)
        first = conn.getresponse()
        first.read()
        sock = conn.sock
        try:
            conn.request("GET", "/healthz")
            second = conn.getresponse()
            second.read()
        except (ConnectionError, http.client.HTTPException):
            return first.status, first.getheader("Retry-After"), False  # the worker closed the connection
        return first.status, first.getheader("Retry-After"), second.status == 200 and conn.sock is sock and sock is not None
    finally:
        conn.close()


def test_redis_restart_keeps_sessions_and_sign_ins_and_outage_is_503(topology):
    """Redis down and back (AOF) under load: the SSO session and a half-finished sign-in made
    before survive, the workers reconnect without a restart, and meanwhile the answer is 503
    with Retry-After and a clear page, never a 500, on a connection kept open."""
    nixa = topology.nixa
    client, citizen = register_client(nixa), make_citizen(nixa)
    a, b = topology.doors("a", "b")
    code_flow(a, topology.backchannel(), client, citizen)  # an SSO session
    other, = topology.doors("pool")
    r, _, _ = authorize(other, client)  # a sign-in begun before the restart
    half_done = r.headers["location"]
    seen: dict = {}

    def during() -> None:
        r, _, _ = authorize(b, client)
        seen["page"] = (r.status_code, r.headers.get("retry-after"), r.text)
        _, challenge = pkce_pair()
        query = urlencode({"response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uri, "scope": "openid",
                           "state": "s", "nonce": "n", "code_challenge": challenge, "code_challenge_method": "S256"})
        seen["direct"] = keep_alive_survives(topology.workers["a"].url, f"/authorize?{query}")
        seen["ready"] = httpx.get(f"{topology.workers['b'].url}/readyz", timeout=5)

    sso, = topology.doors("pool")
    sso.cookies = a.cookies
    with Load(lambda: authorize(sso, client)[0].status_code) as load:
        time.sleep(0.5)
        redis_restart(2.0, during)
        deadline = time.monotonic() + 10
        while True:
            r, _, _ = authorize(a, client)
            if r.status_code == 303:
                break
            assert time.monotonic() < deadline, ("not back 10 s after Redis", r.status_code)
            time.sleep(0.2)
        time.sleep(0.5)
    assert "code" in query_of(r.headers["location"]), "the SSO session did not survive the Redis restart"
    r = sign_in_local(other, half_done, citizen)
    assert "code" in query_of(r.headers["location"]), "the half-finished sign-in did not survive"
    status, retry_after, text = seen["page"]
    assert (status, retry_after) == (503, "5") and "không phản hồi" in text, (status, text[:300])
    assert seen["direct"] == (503, "5", True), seen["direct"]
    assert seen["ready"].status_code == 503 and seen["ready"].headers["retry-after"]
    assert load.statuses and set(load.statuses) <= {303, 503} and 503 in load.statuses, sorted(set(load.statuses))
    assert not load.errors and load.slowest < 5, (load.errors, load.slowest)
    # Exactly one audit entry per completed sign-in (the one before the restart, the one after).
    deadline = time.monotonic() + 10
    while len(signed := events_for(nixa, type="login.succeeded", person_id=citizen.person_id)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    assert len(events_for(nixa, type="login.succeeded", person_id=citizen.person_id)) == 2, signed
    print(f"redis restart: {len(load.statuses)} requests, {load.statuses.count(503)} answered 503, slowest {load.slowest:.2f} s")


def pg_ctl() -> list[str]:
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    assert binaries, "no pg_ctl"
    return (["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []) + [binaries[-1]]


def test_postgresql_restart_is_back_within_5_s_and_nothing_hangs(topology):
    """PostgreSQL restarted under a load of client_credentials tokens (each one reads the client
    and commits its audit event): every answer is 200 or 503, none waits past its timeout, and
    tokens are issued again within 5 s of the database accepting connections."""
    nixa = topology.nixa
    client = register_client(nixa, grant_types=["client_credentials"], response_types=[], redirect_uris=[])
    rp = topology.backchannel()

    issued = []

    def token() -> int:
        status = rp.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, client.secret)).status_code
        issued.append(status == 200)
        return status

    assert token() == 200
    engine = create_engine(DB_URL)
    with engine.connect() as conn:
        data = conn.execute(text("SHOW data_directory")).scalar_one()
    engine.dispose()
    with Load(token) as load:
        time.sleep(0.5)
        # The server's output to its own log: a pipe would stay open as long as the new postmaster lives.
        subprocess.run([*pg_ctl(), "-D", data, "-l", f"{data}/server.log", "-m", "fast", "-w", "-t", "30", "restart"], check=True,
                       timeout=60, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        up = time.monotonic()
        while token() != 200:
            assert time.monotonic() - up < 5, "tokens not issued 5 s after PostgreSQL came back"
            time.sleep(0.1)
        back = time.monotonic() - up
        time.sleep(0.5)
    # The test process's own NIXA holds pooled connections the restart closed and has had no
    # request since (a worker's first error on them invalidates its pool).
    nixa.db.engine.dispose()
    assert set(load.statuses) <= {200, 503}, sorted(set(load.statuses))
    assert not load.errors and load.slowest < REQUEST_TIMEOUT, (load.errors, load.slowest)
    # One audit event per token the client received, none for a refusal, none lost in the restart.
    deadline = time.monotonic() + 15
    while len(events := events_for(nixa, type="token.issued", client_id=client.client_id)) < sum(issued) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(events) == sum(issued), (len(events), sum(issued))
    print(f"postgresql restart: {len(load.statuses)} tokens asked, {load.statuses.count(503)} answered 503, back {back:.2f} s after "
          f"the restart, slowest {load.slowest:.2f} s, {len(events)} token.issued events for {sum(issued)} tokens received")


def test_a_worker_killed_mid_sign_in_the_sign_in_finishes_on_the_other(topology):
    """Last of this folder (worker A stays down): A is killed (SIGKILL) between the sign-in page
    it served and the password; the password, posted through the balancing door, reaches B and
    the sign-in completes, audited once: nothing of it lived inside A."""
    nixa = topology.nixa
    client, citizen = register_client(nixa, nixa_first_party=True), make_citizen(nixa)
    a, pool = topology.doors("a", "pool")
    r, q, verifier = authorize(a, client)
    page = a.get(r.headers["location"]).text
    worker = topology.workers["a"]
    worker.process.kill()
    worker.process.wait(timeout=10)
    r = pool.post(form_action(page, "/local"), data={"csrf": hidden(page, "csrf"), "username": citizen.username,
                                                      "password": citizen.password})
    assert r.status_code == 303, (r.status_code, r.text[:300])
    cb = query_of(r.headers["location"])
    assert cb.get("state") == q["state"] and "code" in cb, r.headers["location"]
    tokens = topology.backchannel().post("/token", data={"grant_type": "authorization_code", "code": cb["code"],
                                                          "redirect_uri": client.redirect_uri, "code_verifier": verifier},
                                         auth=(client.client_id, client.secret))
    assert tokens.status_code == 200, tokens.text
    deadline = time.monotonic() + 10
    while not events_for(nixa, type="login.succeeded", person_id=citizen.person_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    assert len(events_for(nixa, type="login.succeeded", person_id=citizen.person_id)) == 1
