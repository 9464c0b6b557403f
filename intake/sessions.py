"""Who is asking, on the operator listener: passwords, server-side sessions, the trusted proxy.

The design (issue 8, part 2): the approval page, the sign-in service and the operators' API are
served on a listener of their own (OPERATOR_HOST:OPERATOR_PORT, default 127.0.0.1:8081), apart
from the alert intake's webhook listener (INTAKE_PORT), which serves none of their routes. The
webhook port may be public; the operator port is meant to be reachable only through the
operators' authenticating proxy, or from their own network. No signed assertion from the proxy
is checked: the proxy is trusted by its address.

Two ways to say who you are:
- A password from the operators file (APPROVAL_OPERATORS_FILE, `{"name": "pbkdf2_sha256$..."}`;
  `python -m intake.ui hash-password PASSWORD` makes a hash). The page's sign-in form sets a
  session cookie; `POST /auth/login` gives the CLI a bearer token. Both are the same kind of
  session.
- Behind an identity provider's proxy (oauth2-proxy, an ALB with OIDC, ...):
  APPROVAL_TRUSTED_HEADER names the header that carries the user, and it is believed only from
  the proxy's addresses (APPROVAL_TRUSTED_PROXIES, comma-separated IPs, default 127.0.0.1 and
  ::1). The same header from any other client is refused (403), not ignored, so a request that
  went around the proxy is noticed.

Sessions are kept in this process's memory: random opaque tokens of which only the SHA-256 is
stored, each session with its own CSRF token, expiring after 8 hours; logout deletes the session,
so its token stops working at once. A restart of the intake signs everyone out, and replicas do
not share sessions (operators sign in to the replica they use).

Cookies are HttpOnly and SameSite=Strict, and Secure when the request came over TLS or from a
trusted proxy that says `X-Forwarded-Proto: https` (APPROVAL_SECURE_COOKIES=1 forces it). The
operator listener runs without uvicorn's own proxy-header handling (`proxy_headers=False`), which
would otherwise put the address the proxy forwards for in place of the proxy's own.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import os
import secrets
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

COOKIE = "runbook_session"
SESSION_LIFETIME = timedelta(hours=8)
PBKDF2_ROUNDS = 200_000
DEFAULT_PROXIES = "127.0.0.1,::1"


# --------------------------------------------------------------------------- passwords


def hash_password(password: str, salt: str | None = None, rounds: int = PBKDF2_ROUNDS) -> str:
    salt = salt or secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), rounds).hex()
    return f"pbkdf2_sha256${rounds}${salt}${digest}"


def password_matches(password: str, stored: str) -> bool:
    try:
        scheme, rounds, salt, _ = stored.split("$")
        count = int(rounds)
    except ValueError:
        return False
    if scheme != "pbkdf2_sha256":
        return False
    return hmac.compare_digest(hash_password(password, salt, count).encode(), stored.encode())


# A hash to check unknown names against, so that they take as long as known ones.
_NOBODY = hash_password(secrets.token_urlsafe(16))


# --------------------------------------------------------------------------- configuration


class SigninConfigError(ValueError):
    """The sign-in configuration cannot be used; the message names the variable or file."""


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    address = ipaddress.ip_address(text.strip())
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class SigninConfig:
    operators: Mapping[str, str] = field(default_factory=dict)  # name -> password hash
    trusted_header: str | None = None
    trusted_proxies: frozenset[str] = frozenset(DEFAULT_PROXIES.split(","))
    secure_cookies: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> SigninConfig:
        path, header = env.get("APPROVAL_OPERATORS_FILE"), env.get("APPROVAL_TRUSTED_HEADER")
        if not path and not header:
            raise SigninConfigError(
                "nobody could sign in: set APPROVAL_OPERATORS_FILE (a JSON file of name -> password hash; "
                "`python -m intake.ui hash-password PASSWORD` makes one) or APPROVAL_TRUSTED_HEADER "
                "(behind an authenticating proxy)"
            )
        proxies = [item.strip() for item in env.get("APPROVAL_TRUSTED_PROXIES", DEFAULT_PROXIES).split(",")]
        for proxy in filter(None, proxies):
            try:
                _address(proxy)
            except ValueError:
                raise SigninConfigError(f"APPROVAL_TRUSTED_PROXIES: {proxy!r} is not an IP address") from None
        return cls(
            operators=read_operators(Path(path)) if path else {},
            trusted_header=header or None,
            trusted_proxies=frozenset(filter(None, proxies)),
            secure_cookies=env.get("APPROVAL_SECURE_COOKIES", "").lower() in ("1", "true", "yes", "on"),
        )

    def is_proxy(self, host: str | None) -> bool:
        if not host:
            return False
        try:
            address = _address(host)
        except ValueError:
            return False
        return any(address == _address(proxy) for proxy in self.trusted_proxies)


def read_operators(path: Path) -> dict[str, str]:
    try:
        operators = json.loads(path.read_text())
    except OSError as err:
        raise SigninConfigError(f"APPROVAL_OPERATORS_FILE {path}: {err.strerror or err}") from None
    except ValueError as err:
        raise SigninConfigError(f"APPROVAL_OPERATORS_FILE {path} is not JSON: {err}") from None
    if not isinstance(operators, dict) or not all(isinstance(v, str) for v in operators.values()):
        raise SigninConfigError(f"APPROVAL_OPERATORS_FILE {path} must be a JSON object of name -> password hash")
    return {str(name): hashed for name, hashed in operators.items()}


# --------------------------------------------------------------------------- sessions


@dataclass(frozen=True)
class Session:
    user: str
    csrf: str  # this session's own: a form of another session (or of another person's) is refused
    expires_at: datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Sessions:
    """Server-side sessions in this process's memory, by the SHA-256 of their token."""

    def __init__(self, lifetime: timedelta = SESSION_LIFETIME, clock: Callable[[], datetime] | None = None) -> None:
        self.lifetime = lifetime
        self.clock = clock or (lambda: datetime.now(UTC))
        self._sessions: dict[str, Session] = {}

    def open(self, user: str) -> tuple[str, Session]:
        """A new session for `user`: its token (given out once, never stored) and the session."""
        now = self.clock()
        self._sessions = {key: s for key, s in self._sessions.items() if s.expires_at > now}
        token = secrets.token_urlsafe(32)
        session = Session(user=user, csrf=secrets.token_urlsafe(24), expires_at=now + self.lifetime)
        self._sessions[_digest(token)] = session
        return token, session

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        session = self._sessions.get(_digest(token))
        if session is None or session.expires_at <= self.clock():
            return None
        return session

    def revoke(self, token: str | None) -> bool:
        return bool(token) and self._sessions.pop(_digest(token or ""), None) is not None


# --------------------------------------------------------------------------- who is asking


class AuthError(Exception):
    """Not signed in (401), not believed (403) or too many failed sign-ins (429, with
    `retry_after` seconds); the message says why."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.retry_after = status, message, retry_after


class Throttle:
    """Failed sign-ins per name and per client address: after `limit` in `window`, that name
    (and that address) waits until the oldest failure leaves the window. A success clears the
    name. At most `size` keys are remembered (the oldest forgotten first), so cycling through
    names or addresses cannot grow memory without bound."""

    def __init__(
        self,
        limit: int = 5,
        window: timedelta = timedelta(minutes=5),
        size: int = 10_000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.limit, self.window, self.size, self.clock = limit, window, size, clock
        self.failures: OrderedDict[str, list[datetime]] = OrderedDict()

    def wait(self, *keys: str) -> int | None:
        """Seconds until these keys may try again; None: now."""
        now, longest = self.clock(), 0.0
        for key in keys:
            recent = [at for at in self.failures.get(key, []) if now - at < self.window]
            if recent:
                self.failures[key] = recent
            else:
                self.failures.pop(key, None)
            if len(recent) >= self.limit:
                longest = max(longest, (recent[0] + self.window - now).total_seconds())
        return max(1, int(longest) + 1) if longest > 0 else None

    def failed(self, *keys: str) -> None:
        now = self.clock()
        for key in keys:
            self.failures.setdefault(key, []).append(now)
            self.failures.move_to_end(key)
            del self.failures[key][: -self.limit]
        while len(self.failures) > self.size:
            self.failures.popitem(last=False)

    def succeeded(self, key: str) -> None:
        self.failures.pop(key, None)


@dataclass(frozen=True)
class Identity:
    user: str
    session: Session
    token: str | None = None  # set when this request opened the session: its cookie is still to be set


class Auth:
    def __init__(
        self, config: SigninConfig, sessions: Sessions | None = None, throttle: Throttle | None = None
    ) -> None:
        self.config = config
        self.sessions = sessions or Sessions()
        self.throttle = throttle or Throttle(clock=self.sessions.clock)

    def from_proxy(self, request: Request) -> bool:
        return self.config.is_proxy(request.client.host if request.client else None)

    def proxied_user(self, request: Request) -> str | None:
        """The trusted header's user, if it came from a trusted proxy; a header from anyone
        else is refused."""
        header = self.config.trusted_header
        value = request.headers.get(header) if header else None
        if value is None:
            return None
        if not self.from_proxy(request):
            where = request.client.host if request.client else "an unknown address"
            raise AuthError(
                403,
                f"{header} is believed only from the trusted proxies (APPROVAL_TRUSTED_PROXIES); "
                f"this request came from {where}",
            )
        return value.strip() or None

    def bearer(self, request: Request) -> Identity:
        """The API's caller, by bearer token."""
        self.proxied_user(request)  # a forged header is refused here too
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError(401, "missing Authorization: Bearer <token>; sign in first (`runbook login`)")
        session = self.sessions.get(token.strip())
        if session is None:
            raise AuthError(401, "the session has expired or was revoked; sign in again (`runbook login`)")
        return Identity(session.user, session)

    def page(self, request: Request) -> Identity | None:
        """The page's visitor: the trusted proxy's user, else the session cookie's, else None."""
        user = self.proxied_user(request)
        token = request.cookies.get(COOKIE)
        session = self.sessions.get(token)
        if user is None:
            return Identity(session.user, session) if session is not None else None
        if session is not None and session.user == user:
            return Identity(user, session)
        self.sessions.revoke(token)  # the proxy signed in someone else in this browser
        token, session = self.sessions.open(user)
        return Identity(user, session, token)

    async def check_password(self, user: str, password: str, client: str | None = None) -> bool:
        """Off the event loop: a hash takes a tenth of a second, and the webhooks share the loop.
        Failed sign-ins are throttled per name and per client address (AuthError 429)."""
        keys = (f"name:{user}", f"client:{client or '?'}")
        wait = self.throttle.wait(*keys)
        if wait is not None:
            raise AuthError(429, f"too many failed sign-ins for {user} or from {client}; try again in {wait} s", wait)
        stored = self.config.operators.get(user)
        matches = await asyncio.to_thread(password_matches, password, stored or _NOBODY)
        if stored is not None and matches:
            self.throttle.succeeded(keys[0])
            return True
        self.throttle.failed(*keys)
        return False

    def secure(self, request: Request) -> bool:
        if self.config.secure_cookies or request.url.scheme == "https":
            return True
        forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        return forwarded == "https" and self.from_proxy(request)

    def set_cookie(self, request: Request, response: Response, token: str, session: Session) -> None:
        response.set_cookie(
            COOKIE,
            token,
            max_age=max(0, int((session.expires_at - self.sessions.clock()).total_seconds())),
            path="/",
            httponly=True,
            samesite="strict",
            secure=self.secure(request),
        )
