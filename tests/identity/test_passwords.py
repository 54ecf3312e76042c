"""Local passwords: argon2id at OWASP's parameters (m=19 MiB, t=2, p=1) unless configured; a hash
made with other parameters is re-hashed at the next successful sign-in, never at a failed one;
concurrent checks follow the cores the process may use."""

from __future__ import annotations

import os
import subprocess
import sys

from argon2 import PasswordHasher
from sqlalchemy import select, update

from idp.identity.people import password_hasher, usable_cores
from idp.store.models import LocalAccount
from tests.conftest import make_citizen


def _stored(nixa, username: str) -> str:  # noqa: ANN001
    with nixa.db.session() as s:
        return s.scalar(select(LocalAccount.password_hash).where(LocalAccount.username == username))


def test_new_hashes_use_owasps_parameters(nixa):  # noqa: ANN001
    citizen = make_citizen(nixa)
    assert "$argon2id$v=19$m=19456,t=2,p=1$" in _stored(nixa, citizen.username)
    assert "m=12288,t=3,p=1" in password_hasher(12288, 3, 1).hash("x")  # configurable (NIXA_PASSWORD_*)


def test_an_older_hash_is_rehashed_at_the_next_successful_sign_in_only(nixa):  # noqa: ANN001
    citizen = make_citizen(nixa)
    old = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4).hash(citizen.password)  # argon2-cffi's defaults
    with nixa.db.session() as s:
        s.execute(update(LocalAccount).where(LocalAccount.username == citizen.username).values(password_hash=old))
    assert nixa.people.check_local_password(citizen.username, "wrong password") is None
    assert _stored(nixa, citizen.username) == old  # a failed check changes nothing
    assert nixa.people.check_local_password(citizen.username, citizen.password) == citizen.person_id
    now = _stored(nixa, citizen.username)
    assert now != old and "m=19456,t=2,p=1" in now
    assert nixa.people.check_local_password(citizen.username, citizen.password) == citizen.person_id  # and it still works


def test_a_disabled_account_or_an_unknown_name_never_signs_in_and_costs_the_same_verify(nixa, monkeypatch):  # noqa: ANN001
    """Attackers: someone holding the right password of an account an operator disabled; someone
    probing which usernames exist by how long a wrong answer takes. A disabled account is refused
    with its own right password; a known name, an unknown one and a disabled one each cost
    exactly one argon2id verify (against a dummy hash when there is no usable one)."""
    citizen = make_citizen(nixa)
    verified: list[str] = []
    real = nixa.people._hasher

    class Counting:  # argon2's own hasher, every verify noted
        def verify(self, stored: str, password: str) -> bool:
            verified.append(stored)
            return real.verify(stored, password)

        def __getattr__(self, name: str):  # noqa: ANN204
            return getattr(real, name)

    monkeypatch.setattr(nixa.people, "_hasher", Counting())
    assert nixa.people.check_local_password(citizen.username, citizen.password) == citizen.person_id
    assert nixa.people.check_local_password("nobody-" + citizen.username, citizen.password) is None
    with nixa.db.session() as s:
        s.execute(update(LocalAccount).where(LocalAccount.username == citizen.username).values(disabled=True))
    assert nixa.people.check_local_password(citizen.username, citizen.password) is None
    assert len(verified) == 3
    assert verified[1] == verified[2] != verified[0]  # the unknown and the disabled: the same dummy hash


def test_concurrent_checks_follow_the_processs_cpu_affinity():
    """A process pinned to one core (taskset, a container's cpuset) checks one password at a
    time, whatever the machine's count."""
    script = "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); from idp.identity import people; " \
             "print(people.usable_cores(), people._argon2_slots._value)"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60).stdout.split()
    assert out == ["1", "1"]
    assert usable_cores() == len(os.sched_getaffinity(0))
