"""Single logout survives a crash, in a real browser against a real NIXA process (`nixa serve`):
the citizen signs in on both demo portals and signs out on the e-tax portal while the
public-service portal is down; NIXA is killed (SIGKILL) before that portal could be told; the
portal comes back still showing the citizen signed in; NIXA is started again on the same
database, and its outbox tells the portal, whose page then shows signed out."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import select

from idp.store.models import AuditEvent, LogoutDelivery
from tests.browser.conftest import assert_accessible, demo_portals, main_says
from tests.conftest import REDIS_URL, LiveServer, free_port, make_citizen

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def nixa_process(port: int, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """`nixa serve` on `port`, ready once its discovery document answers."""
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "-m", "admin.cli", "serve", "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/.well-known/openid-configuration", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                log.seek(0)
                raise AssertionError(f"nixa serve did not start:\n{log.read().decode(errors='replace')[-3000:]}")
            time.sleep(0.2)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
        log.close()


@pytest.fixture()
def nixa_env(live, nixa, database_url, master_key, var_dir) -> dict[str, str]:  # noqa: ANN001
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIXA_")}
    env.update(NIXA_ISSUER=f"http://127.0.0.1:{port}", NIXA_DATABASE_URL=database_url, NIXA_REDIS_URL=REDIS_URL, NIXA_VAR_DIR=str(var_dir),
               NIXA_MASTER_KEY=master_key, NIXA_PORT=str(port))
    # The other NIXA workers of this test session share the database: they are down too (their
    # delivery threads start again at their next logout).
    live.nixa.backchannel.stop()
    nixa.backchannel.stop()
    return env


def _main_text(driver, url: str, wait: WebDriverWait) -> str:  # noqa: ANN001
    driver.get(url + "/")
    return wait.until(ec.presence_of_element_located((By.TAG_NAME, "main"))).text


def _rows(nixa, client_id: str) -> list[LogoutDelivery]:  # noqa: ANN001
    with nixa.db.session() as s:
        return list(s.scalars(select(LogoutDelivery).where(LogoutDelivery.client_id == client_id)))


def _outcomes(nixa, client_id: str) -> list[str]:  # noqa: ANN001
    with nixa.db.session() as s:
        return list(s.scalars(select(AuditEvent.type).where(AuditEvent.client_id == client_id, AuditEvent.type.like("logout.%"))
                              .order_by(AuditEvent.id)))


def test_a_logout_nixa_could_not_deliver_before_a_crash_is_delivered_after_the_restart(chromium, live, nixa_env) -> None:  # noqa: ANN001
    port = int(nixa_env.pop("NIXA_PORT"))
    citizen = make_citizen(live.nixa, name="Trần Văn Bình")
    wait = WebDriverWait(chromium, 20)
    chromium.delete_all_cookies()
    with nixa_process(port, nixa_env) as first, demo_portals(SimpleNamespace(url=nixa_env["NIXA_ISSUER"], nixa=live.nixa),
                                                             nixa_first_party=True) as portals:
        services, tax = portals["services"], portals["tax"]
        chromium.get(services["url"] + "/")
        chromium.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
        wait.until(ec.presence_of_element_located((By.ID, "local-username"))).send_keys(citizen.username)
        assert_accessible(chromium, "the sign-in page of `nixa serve`")
        chromium.find_element(By.ID, "local-password").send_keys(citizen.password + Keys.ENTER)
        wait.until(main_says("Xin chào, Trần Văn Bình"))
        chromium.get(tax["url"] + "/")
        chromium.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
        wait.until(main_says("Xin chào, Trần Văn Bình"))

        # the public-service portal goes down; the citizen signs out on e-tax
        services["server"].stop()
        chromium.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
        wait.until(ec.url_contains("/?state="))
        assert not chromium.find_elements(By.CSS_SELECTOR, "form[action='/logout']")
        deadline = time.time() + 20
        while not (any(r.attempts >= 1 and r.last_error for r in _rows(live.nixa, services["client"].client_id))
                   and _outcomes(live.nixa, services["client"].client_id)):
            assert time.time() < deadline, "NIXA never tried to tell the public-service portal"
            time.sleep(0.2)
        first.kill()  # a crash: no shutdown, nothing flushed
        first.wait(10)
        [row] = _rows(live.nixa, services["client"].client_id)
        assert row.status == "pending"

        # the portal is back, and nobody has told it yet
        services["server"] = LiveServer(services["app"], services["port"]).start()
        assert "Xin chào, Trần Văn Bình" in _main_text(chromium, services["url"], wait)

        with nixa_process(port, nixa_env):  # NIXA restarted on the same database
            deadline = time.time() + 45
            while "Xin chào" in _main_text(chromium, services["url"], wait):
                assert time.time() < deadline, "the restarted NIXA never delivered the pending logout"
                time.sleep(0.5)
            assert chromium.find_elements(By.CSS_SELECTOR, "form[action='/login']")
        [row] = _rows(live.nixa, services["client"].client_id)
        assert row.status == "delivered" and row.attempts >= 2
        deadline = time.time() + 10  # the restarted worker's audit writer commits in groups
        while _outcomes(live.nixa, services["client"].client_id)[-1] != "logout.delivered":
            assert time.time() < deadline, _outcomes(live.nixa, services["client"].client_id)
            time.sleep(0.2)
        assert _outcomes(live.nixa, services["client"].client_id)[0] == "logout.retrying"
        services["server"].stop()
