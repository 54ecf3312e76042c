"""A database that does not answer costs a bounded wait, never a hang: a server behind a partition
(here a loopback listener that accepts the connection and never says a word, as a black hole
past a firewall would look to the client) fails the connection within the connect timeout."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from idp.store.db import CONNECT_TIMEOUT, make_engine


@pytest.fixture()
def silent_server():  # noqa: ANN201
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                held.append(conn)  # accepted, never answered
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    listener.close()


def test_a_database_that_never_answers_fails_within_the_connect_timeout(silent_server: int) -> None:
    engine = make_engine(f"postgresql+psycopg://nixa@127.0.0.1:{silent_server}/nixa")
    started = time.monotonic()
    with pytest.raises(OperationalError):
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    waited = time.monotonic() - started
    engine.dispose()
    assert CONNECT_TIMEOUT - 1 <= waited < CONNECT_TIMEOUT + 5, waited
