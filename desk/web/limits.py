"""Rate limits for logins and the self-service portal, and who the client is.

An attempt is counted *before* the handler awaits anything (`Limiter.acquire` reserves a place
under every rule at once, synchronously), so guesses sent in parallel are counted like guesses
sent one after another; a good login gives its place back. Memory is bounded: each key keeps at
most its rule's limit of times, and the limiter keeps at most `max_keys` keys, forgetting the
least recently used first.

The login counts per (account, address), per address and per account:
- 5 failures of one account from one address in 5 minutes lock that pair only, so a guesser
  cannot lock the account's owner out from their own desk;
- 20 failures from one address in 5 minutes (any names) stop one address trying many names;
- 50 failures of one account in an hour, from anywhere, stop slow guessing spread over many
  addresses. Reaching it needs at least ten addresses at work, and it lifts as the hour moves on.
"""

import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True)
class Rule:
    """At most `limit` attempts in `window` seconds."""

    limit: int
    window: float


LOGIN_PAIR = Rule(5, 300)
LOGIN_ADDRESS = Rule(20, 300)
LOGIN_ACCOUNT = Rule(50, 3600)
# The portal: failed lookups (number + phone) and accepted requests, per address.
PORTAL_LOOKUP = Rule(10, 600)
PORTAL_SUBMIT = Rule(10, 600)
# Links from the desk's e-mails (confirm or reopen, subscriptions), read per address; asking to
# subscribe, per address and per address subscribed (nobody floods a mailbox with confirmations).
PORTAL_LINK = Rule(30, 600)
PORTAL_SUBSCRIBE = Rule(5, 3600)
SUBSCRIBE_TARGET = Rule(2, 86400)

Keys = Sequence[tuple[str, Rule]]


def login_keys(username: str, address: str) -> list[tuple[str, Rule]]:
    """What one login attempt counts against."""
    return [
        (f"pair:{username}\n{address}", LOGIN_PAIR),
        (f"addr:{address}", LOGIN_ADDRESS),
        (f"user:{username}", LOGIN_ACCOUNT),
    ]


@dataclass(frozen=True)
class Ticket:
    """Places reserved by one attempt: (key, time) under each rule."""

    stamps: tuple[tuple[str, float], ...]


class Limiter:
    """Attempts per key in a sliding window, reserved atomically, in bounded memory."""

    def __init__(self, max_keys: int = 30_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_keys = max_keys
        self._clock = clock
        self._times: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._times)

    def _recent(self, key: str, rule: Rule, now: float) -> int:
        times = self._times.get(key)
        if times is None:
            return 0
        while times and times[0] <= now - rule.window:
            times.popleft()
        return len(times)

    def acquire(self, keys: Keys) -> Ticket | None:
        """Reserve a place under every rule, or None (nothing counted) if one is used up."""
        now = self._clock()
        if any(self._recent(key, rule, now) >= rule.limit for key, rule in keys):
            return None
        for key, rule in keys:
            times = self._times.get(key)
            if times is None:
                times = self._times[key] = deque(maxlen=rule.limit)
            else:
                self._times.move_to_end(key)
            times.append(now)
        while len(self._times) > self.max_keys:
            self._times.popitem(last=False)
        return Ticket(tuple((key, now) for key, _ in keys))

    def release(self, ticket: Ticket) -> None:
        """Give the places back: the attempt does not count (a good login)."""
        for key, at in ticket.stamps:
            times = self._times.get(key)
            if times is not None and at in times:
                times.remove(at)

    def forget(self, key: str) -> None:
        """Drop everything counted under a key."""
        self._times.pop(key, None)


def too_many(message: str) -> web.HTTPTooManyRequests:
    """A 429 with a JSON body."""
    return web.HTTPTooManyRequests(text=f'{{"error":"{message}"}}', content_type="application/json")


def _address_key(raw: str) -> str:
    """An address as limits count it: IPv6 by /64 (one host usually has a whole /64)."""
    try:
        ip = ipaddress.ip_address(raw.strip())
    except ValueError:
        return raw.strip()[:64] or "?"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _trusted(raw: str, proxies: Sequence[str]) -> bool:
    try:
        ip = ipaddress.ip_address(raw.strip())
    except ValueError:
        return False
    for p in proxies:
        try:
            if ip in ipaddress.ip_network(p, strict=False):
                return True
        except ValueError:
            continue
    return False


def client_address(request: web.Request, trusted_proxies: Sequence[str]) -> str:
    """Who sent the request: the peer, or, when the peer is a trusted proxy, the last address in
    X-Forwarded-For that is not one (an untrusted peer's X-Forwarded-For is ignored, so nobody
    can make up addresses to get more attempts)."""
    peer = request.remote or "?"
    if not trusted_proxies or not _trusted(peer, trusted_proxies):
        return _address_key(peer)
    hops = [h for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted_proxies):
            return _address_key(hop)
    return _address_key(peer)
