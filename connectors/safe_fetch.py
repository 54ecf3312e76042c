"""Server-side fetches of URLs that someone other than the operator chose: a client's jwks_uri
and sector_identifier_uri, an upstream provider's discovery document and the URLs it names.

Such a URL can aim NIXA at its own network (SSRF): the cloud metadata service on 169.254.x, an
admin port on 127.0.0.1, a database on 10.x. The policy, applied by ResilientHttp(policy=...):
- https only; plain http only to a loopback address, and only where loopback is allowed;
- the host name is resolved here and every address it resolves to must be public, unless the
  deployment allows its network (NIXA_FETCH_ALLOWED_NETWORKS; demo mode allows loopback);
- the connection goes to the address that was checked, so a second DNS answer (rebinding)
  cannot swap in another; TLS still verifies the certificate for the host name;
- redirects are not followed (a redirect would be a new, unchecked URL).
The connectors' own base URLs (registry, SMS gateway, LDAP) are operator configuration and do
not go through this policy.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

from connectors.base import UpstreamUnavailable

if TYPE_CHECKING:
    from connectors.resilience import ResilientHttp

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

LOOPBACK = ("127.0.0.0/8", "::1/128")
MAX_DOCUMENT_BYTES = 256 * 1024  # a JWKS or discovery document is a few KB; more is not one
NEGATIVE_TTL = 10.0  # a failed fetch is not retried for this long (per URL, per worker)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the last 32 bits


class FetchRefused(UpstreamUnavailable):
    """The URL points where NIXA does not fetch from (a refusal, not an outage)."""

    code = "fetch_refused"


def system_resolver(host: str, port: int) -> list[str]:
    try:
        return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]
    except (socket.gaierror, UnicodeError) as exc:
        raise UpstreamUnavailable(f"{host}: name does not resolve ({exc})") from exc


def _embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one carries to (mapped, 6to4, NAT64), else the address itself:
    ::ffff:127.0.0.1 is loopback whatever its notation."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return address.ipv4_mapped
        if address.sixtofour:
            return address.sixtofour
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


@dataclass(frozen=True)
class Pinned:
    """A request to the checked address: the URL with the address for the host, the Host header
    and the TLS server name (the certificate is verified for the name, not the address)."""

    url: str
    host_header: str
    sni_hostname: str | None


@dataclass(frozen=True)
class FetchPolicy:
    """Default: public addresses only. `allowed_networks` opens private ranges the deployment
    chose (an internal ministry provider on 10.20.0.0/16; loopback for a demo on one machine)."""

    allowed_networks: tuple[IPNetwork, ...] = ()
    resolver: Resolver = system_resolver

    @classmethod
    def allowing(cls, networks: Iterable[str], *, loopback: bool = False, resolver: Resolver = system_resolver) -> FetchPolicy:
        entries = [*networks, *(LOOPBACK if loopback else ())]
        return cls(tuple(ipaddress.ip_network(n.strip(), strict=False) for n in entries), resolver)

    def allows(self, address: IPAddress) -> bool:
        address = _embedded_ipv4(address)
        if any(address.version == n.version and address in n for n in self.allowed_networks):
            return True
        return address.is_global and not address.is_multicast

    def check_url(self, url: str) -> SplitResult:
        """What can be told without the network: scheme, host, an address literal, `localhost`.
        Raises FetchRefused with the reason."""
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
            raise FetchRefused(f"{url!r} is not an https URL")
        if parts.username is not None or parts.password is not None:
            raise FetchRefused(f"{url!r} must not carry user information")
        try:
            parts.port  # noqa: B018 - raises on a port that is no number
        except ValueError as exc:
            raise FetchRefused(f"{url!r} has an invalid port") from exc
        # RFC 6761 §6.3: localhost names are loopback whatever a resolver says.
        address = _literal(parts.hostname) or (_LOCALHOST if _is_localhost(parts.hostname) else None)
        if address is not None:
            self._check_address(parts.hostname, address)
        if parts.scheme == "http" and not (address is not None and _embedded_ipv4(address).is_loopback):
            raise FetchRefused(f"{url!r} must be https (plain http only to loopback)")
        return parts

    def pin(self, url: str) -> Pinned:
        """Check `url`, resolve its host and check every address; the request to send."""
        parts = self.check_url(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        literal = _literal(parts.hostname)
        addresses = [literal] if literal is not None else [ipaddress.ip_address(a.split("%")[0]) for a in self.resolver(parts.hostname, port)]
        if not addresses:
            raise UpstreamUnavailable(f"{parts.hostname}: name does not resolve")
        for address in addresses:  # every one: a name with one public and one private address is refused
            self._check_address(parts.hostname, address)
        if parts.scheme == "http" and not all(_embedded_ipv4(a).is_loopback for a in addresses):
            raise FetchRefused(f"{url!r} must be https (plain http only to loopback)")
        chosen = addresses[0]
        host = f"[{chosen}]" if chosen.version == 6 else str(chosen)
        netloc = f"{host}:{parts.port}" if parts.port else host
        host_header = parts.netloc.rpartition("@")[2]
        sni = parts.hostname if parts.scheme == "https" and literal is None else None
        return Pinned(urlunsplit(parts._replace(netloc=netloc)), host_header, sni)

    def _check_address(self, host: str, address: IPAddress) -> None:
        if not self.allows(address):
            raise FetchRefused(f"{host} is {address}, a private, loopback or link-local address NIXA does not fetch from "
                               "(allow its network in NIXA_FETCH_ALLOWED_NETWORKS if it is yours)")


_LOCALHOST = ipaddress.IPv4Address("127.0.0.1")


def _is_localhost(host: str) -> bool:
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None


def fetch_json(http: ResilientHttp, url: str, what: str) -> Any:
    """GET a JSON document through `http` (built with a policy, a size cap, a negative cache):
    its parsed body, or UpstreamUnavailable / FetchRefused saying why not. The one fetch of
    jwks_uri, sector_identifier_uri and upstream discovery."""
    response = http.get(url, headers={"Accept": "application/json"})
    if 300 <= response.status_code < 400:
        raise FetchRefused(f"{what}: {url} answers with a redirect, which NIXA does not follow")
    if response.status_code != 200:
        raise UpstreamUnavailable(f"{what}: {url} answers HTTP {response.status_code}")
    try:
        return response.json()
    except ValueError as exc:
        raise UpstreamUnavailable(f"{what}: {url} does not return JSON") from exc
