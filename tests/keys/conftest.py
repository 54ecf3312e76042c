"""A database of its own for tests that change the master key or the key backend: the session
database's keys must stay what every other test was given. A throwaway SoftHSM2 token for the
PKCS#11 backend."""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import DB_URL


def at_once(*calls: Callable[[], object], timeout: float = 60) -> list[object]:
    """Run the calls in threads released together (two workers at the same moment); each one's
    result, or the exception it raised."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def go(i: int) -> None:
        barrier.wait(timeout=10)
        try:
            results[i] = calls[i]()
        except Exception as exc:  # noqa: BLE001
            results[i] = exc

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    return results


def new_master_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


@contextmanager
def new_database(folder: Path) -> Iterator[str]:
    """A new, migrated database on the run's backend (a new PostgreSQL database in the scale-out run)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from idp.store.db import migrate

    if not DB_URL:
        url = f"sqlite:///{(folder / 'fresh.db').as_posix()}"
        migrate(url)
        yield url
        return
    name = f"nixa_{uuid.uuid4().hex[:12]}"
    admin = create_engine(DB_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(DB_URL).set(database=name).render_as_string(hide_password=False)
    migrate(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture()
def fresh_database_url(tmp_path: Path) -> Iterator[str]:
    with new_database(tmp_path) as url:
        yield url


# ---- a throwaway SoftHSM2 token ------------------------------------------------------------------

# Where Debian's softhsm2 package puts the module; NIXA_TEST_PKCS11_MODULE names another.
SOFTHSM_MODULES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
                   "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so", "/usr/local/lib/softhsm/libsofthsm2.so")


@dataclass(frozen=True)
class SoftHsm:
    module: str
    label: str
    pin: str
    conf: Path

    def settings(self) -> dict[str, str]:
        return {"key_backend": "pkcs11", "pkcs11_module": self.module, "pkcs11_token_label": self.label, "pkcs11_pin": self.pin}

    def env(self, pin: str | None = None) -> dict[str, str]:
        return {"NIXA_KEY_BACKEND": "pkcs11", "NIXA_PKCS11_MODULE": self.module, "NIXA_PKCS11_TOKEN_LABEL": self.label,
                "NIXA_PKCS11_PIN": self.pin if pin is None else pin, "SOFTHSM2_CONF": str(self.conf)}


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    """A token of its own in a temporary folder (SOFTHSM2_CONF points at a generated
    configuration), initialised with `softhsm2-util --init-token --free`. SoftHSM reads its
    configuration once per process, so there is one token for the whole run."""
    util = shutil.which("softhsm2-util")
    module = os.environ.get("NIXA_TEST_PKCS11_MODULE") or next((m for m in SOFTHSM_MODULES if Path(m).exists()), None)
    if util is None or module is None:
        pytest.fail("SoftHSM2 is missing (softhsm2-util, libsofthsm2.so): run scripts/bootstrap.sh")
    folder = tmp_path_factory.mktemp("softhsm")
    (folder / "tokens").mkdir()
    conf = folder / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {folder / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
                    "slots.removable = false\n", encoding="utf-8")
    label, pin = f"nixa-{uuid.uuid4().hex[:8]}", secrets.token_hex(8)
    before = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run([util, "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", secrets.token_hex(8)],
                   check=True, capture_output=True, timeout=60)
    yield SoftHsm(module, label, pin, conf)
    if before is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = before
