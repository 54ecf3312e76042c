"""The one throttle service: every secret check and every message sent goes through it.

Keys are built here and nowhere else, from identifiers the caller has already made canonical
(`connectors.base.canonical_username`, `normalize_pin`, `normalize_msisdn`), so variants of one
identifier share one counter. Each call counts against several limits in one atomic store step
(`EphemeralStore.throttle_hit`), so parallel requests cannot slip past a limit, and a limit
that is exceeded locks its key with exponential backoff (window, 2×, 4×, … up to a day).

Why not a library: `limits` (5.8) counts one key per call (a multi-limit check there is several
round trips, not one atomic hit-then-check) and has no lock-out with exponential backoff, so
the same semantics on Redis and in memory would still be ours to write.

Key layout (all under `throttle:`; identifiers and destinations only as SHA-256):
    secret:<method>:<level>:acct:<h(identifier)>:addr:<net>   limit L       window login_window
    secret:<method>:<level>:acct:<h(identifier)>              limit 5 L     (distributed guessing)
    secret:<method>:<level>:addr:<net>                        limit 10 L    (a NAT gets slack)
    secret:<method>:<level>:req:<h(request id)>               limit 2 L
    known:<method>:<level>:<h(identifier, browser)>           a browser that signed this account in
    send:<channel>:dest:<h(destination)>                      per_destination per `window`
    send:addr:<net>                                           sms_per_address_per_hour, 1 h
    send:<channel>:req:<h(request id)>                        sms_per_request, pending_request_ttl
    send:global                                               sms_global_per_hour, 1 h
    own:<connector's key>                                     the connector's own rule
each with `:lock` and `:strikes` beside it (see the store). L = login_attempts_per_window.
<net> is `address_key(ip)`: an IPv4 address, or the /64 of an IPv6 one. Method and level are in
every secret key, so failures at a weaker method never lock a stronger one. Sending is counted
per address and globally across channels (every SMS costs the same), per destination and per
request within a channel (a notice does not eat the codes' quota). A send lock lasts at most
the longest window of the call (an hour by default): a sending quota is a budget, not a guessing
defence, so it does not keep doubling.

The address-wide limit is slack, not immunity: when it is reached, everyone behind that address
who has no history is throttled, but a browser that already signed this very account in with
this method (OWASP's "device cookie": the browser-binding cookie NIXA sets anyway) is not held
by the address-wide limit; its own account limits still apply. So a hundred failures from one
NAT address slow strangers down without locking out the people who use it every day.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from idp.settings import Settings

PREFIX = "throttle:"
HOUR = 3600.0
KNOWN_BROWSER_TTL = 90 * 86400  # a browser that signed an account in stays known that long


def address_key(ip: str) -> str:
    """The network a client address stands for: IPv4 as is, IPv6 by its /64 (one subscriber
    usually holds a whole /64, so counting single IPv6 addresses would be no limit at all)."""
    text = (ip or "").strip()
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        # Not an address (a test client's name, a unix socket): still one bounded key of its own.
        return "other-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return f"{ipaddress.IPv6Address(int(address) >> 64 << 64)}/64"
    return str(address)


def _h(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def _seconds(wait: float) -> int:
    return 0 if wait <= 0 else max(1, math.ceil(wait))


class Throttle:
    """Typed throttle over the ephemeral store; `settings` is idp.settings.Settings."""

    def __init__(self, store: Any, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    # ---- secrets (passwords, codes, answers) --------------------------------------------------

    def _secret_keys(self, method: str, level: int, identifier: str, ip: str | None, request_id: str | None) -> dict[str, str]:
        base = f"{PREFIX}secret:{method}:{int(level)}:"
        account = f"{base}acct:{_h(identifier)}"
        keys = {"account": account}
        if ip:
            net = address_key(ip)
            keys["account_address"] = f"{account}:addr:{net}"
            keys["address"] = f"{base}addr:{net}"
        if request_id:
            keys["request"] = f"{base}req:{_h(request_id)}"
        return keys

    def _browser_key(self, method: str, level: int, identifier: str, browser: str) -> str:
        return f"{PREFIX}known:{method}:{int(level)}:{_h(identifier + chr(0) + browser)}"

    def secret_attempt(self, *, method: str, level: int, identifier: str, ip: str | None, request_id: str | None,
                       browser: str | None = None) -> int:
        """Count one attempt BEFORE the secret is checked. Returns whole seconds to wait: 0 means
        go ahead and check it; anything else means refuse without checking."""
        keys = self._secret_keys(method, level, identifier, ip, request_id)
        if browser and identifier and "address" in keys and self.store.get(self._browser_key(method, level, identifier, browser)):
            del keys["address"]  # a browser known for this account: not held by the shared address
        per = self.settings.login_attempts_per_window
        window = float(self.settings.login_window)
        factors = {"account_address": 1, "account": 5, "address": 10, "request": 2}
        rules = [(keys[name], per * factor, window) for name, factor in factors.items() if name in keys]
        return _seconds(self.store.throttle_hit(rules))

    def secret_succeeded(self, *, method: str, level: int, identifier: str, ip: str | None, request_id: str | None,
                         browser: str | None = None) -> None:
        """The secret was right: give the attempt back to the account and address counters, and
        remember the browser for this account."""
        keys = self._secret_keys(method, level, identifier, ip, request_id)
        self.store.throttle_refund([keys[n] for n in ("account_address", "account", "address") if n in keys])
        if browser and identifier:
            self.store.put(self._browser_key(method, level, identifier, browser), 1, KNOWN_BROWSER_TTL)

    # ---- messages sent (SMS codes, notices) ---------------------------------------------------

    def send_attempt(
        self,
        *,
        channel: str,
        destination: str | None,
        ip: str | None,
        request_id: str | None,
        per_destination: int,
        window: float = HOUR,
    ) -> int:
        """Count one message BEFORE it is sent (a successful send counts too). Returns whole
        seconds to wait; 0 means send it."""
        s = self.settings
        rules: list[tuple[str, int, float]] = []
        if destination:
            rules.append((f"{PREFIX}send:{channel}:dest:{_h(destination)}", int(per_destination), float(window)))
        if ip:
            rules.append((f"{PREFIX}send:addr:{address_key(ip)}", s.sms_per_address_per_hour, HOUR))
        if request_id:
            rules.append((f"{PREFIX}send:{channel}:req:{_h(request_id)}", s.sms_per_request, float(s.pending_request_ttl)))
        rules.append((f"{PREFIX}send:global", s.sms_global_per_hour, HOUR))
        longest_window = max(w for _, _, w in rules)
        return _seconds(self.store.throttle_hit(rules, lock_max=longest_window))

    # ---- a connector's own rule ---------------------------------------------------------------

    def attempt(self, rules: list[tuple[str, int, float]], *, lock_base: float | None = None, lock_max: float = 86400) -> int:
        """Count one attempt against a connector's own (key, limit, window) rules, namespaced
        under `throttle:own:`. Returns whole seconds to wait, 0 to go ahead."""
        own = [(f"{PREFIX}own:{key}", int(limit), float(window)) for key, limit, window in rules]
        if not own:
            return 0
        return _seconds(self.store.throttle_hit(own, lock_base=lock_base, lock_max=lock_max))
