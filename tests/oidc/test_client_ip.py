"""client_ip: X-Forwarded-For is believed only from trusted proxies (addresses or CIDR ranges),
and read from the right, so a client cannot pick the address its attempts are counted against."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pydantic import ValidationError
from starlette.requests import Request

from idp.oidc.endpoints import client_ip
from idp.settings import Settings
from idp.store.throttle import address_key


def request(peer: str | None, *forwarded: str) -> Request:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers, "client": (peer, 40000) if peer else None}
    return Request(scope)


def nixa(*proxies: str) -> SimpleNamespace:
    return SimpleNamespace(settings=Settings(trusted_proxies=list(proxies)))


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert client_ip(request("203.0.113.5", "1.2.3.4"), nixa()) == "203.0.113.5"


def test_an_untrusted_peers_header_is_ignored() -> None:
    assert client_ip(request("203.0.113.5", "1.2.3.4"), nixa("10.0.0.0/8")) == "203.0.113.5"


def test_a_trusted_proxy_gives_the_address_it_saw() -> None:
    assert client_ip(request("10.0.0.2", "198.51.100.7"), nixa("10.0.0.0/8")) == "198.51.100.7"
    assert client_ip(request("10.0.0.2", "198.51.100.7"), nixa("10.0.0.2")) == "198.51.100.7"  # a bare address


def test_a_spoofed_leftmost_hop_is_ignored() -> None:
    # The client sent "X-Forwarded-For: 1.1.1.1"; the proxy appended what it saw.
    assert client_ip(request("10.0.0.2", "1.1.1.1, 198.51.100.7"), nixa("10.0.0.0/8")) == "198.51.100.7"
    # Rotating the forged value does not move the address attempts are counted against.
    seen = {client_ip(request("10.0.0.2", f"192.0.2.{i}, 198.51.100.7"), nixa("10.0.0.0/8")) for i in range(20)}
    assert seen == {"198.51.100.7"}


def test_chains_of_trusted_proxies_are_skipped_from_the_right() -> None:
    proxies = nixa("10.0.0.0/8", "172.16.0.0/12")
    assert client_ip(request("10.0.0.2", "1.1.1.1, 198.51.100.7, 172.16.4.4, 10.1.1.1"), proxies) == "198.51.100.7"
    # Several header lines are one list, in order.
    assert client_ip(request("10.0.0.2", "1.1.1.1, 198.51.100.7", "172.16.4.4"), proxies) == "198.51.100.7"


def test_a_malformed_hop_stops_at_the_last_trusted_address() -> None:
    proxies = nixa("10.0.0.0/8")
    assert client_ip(request("10.0.0.2", "198.51.100.7, not-an-ip, 10.3.3.3"), proxies) == "10.3.3.3"
    assert client_ip(request("10.0.0.2", "198.51.100.7, "), proxies) == "10.0.0.2"
    assert client_ip(request("10.0.0.2", "198.51.100.7:5555"), proxies) == "10.0.0.2"


def test_only_trusted_hops_give_the_leftmost() -> None:
    assert client_ip(request("10.0.0.2", "10.9.9.9, 10.8.8.8"), nixa("10.0.0.0/8")) == "10.9.9.9"


def test_no_header_from_a_trusted_proxy_is_the_proxy() -> None:
    assert client_ip(request("10.0.0.2"), nixa("10.0.0.0/8")) == "10.0.0.2"


def test_ipv6_proxies_and_clients() -> None:
    proxies = nixa("fd00::/8", "10.0.0.0/8")
    got = client_ip(request("fd00::1", "2001:db8:1:2::99, fd00::7"), proxies)
    assert got == "2001:db8:1:2::99"
    other = client_ip(request("fd00::1", "2001:db8:1:2:ffff::1"), proxies)
    assert address_key(got) == address_key(other) == "2001:db8:1:2::/64"
    # An IPv4-mapped peer is inside the IPv4 range.
    assert client_ip(request("::ffff:10.0.0.2", "198.51.100.7"), proxies) == "198.51.100.7"


def test_no_peer() -> None:
    assert client_ip(request(None, "1.2.3.4"), nixa("10.0.0.0/8")) is None


def test_trusted_proxies_must_be_addresses_or_ranges() -> None:
    assert Settings(trusted_proxies=["10.0.0.0/8", "192.0.2.1", "fd00::/8"]).trusted_proxies == ["10.0.0.0/8", "192.0.2.1", "fd00::/8"]
    with pytest.raises(ValidationError):
        Settings(trusted_proxies=["proxy.internal"])
