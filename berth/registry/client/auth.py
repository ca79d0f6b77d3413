"""Registry credentials and the auth flow: challenge in, credentials or token out.

``X-Registry-Auth`` (base64url JSON ``{"username","password","serveraddress"}``, or ``e30=``)
decodes to :class:`Credentials`. A 401's ``WWW-Authenticate`` header parses into challenges;
:class:`Authenticator` turns a challenge plus credentials into an ``Authorization`` header:
``Basic`` directly, ``Bearer`` by asking the token realm (anonymously or with Basic credentials)
for the scopes the caller needs. Tokens are cached per (realm, service, scopes) until they
expire. Raises :class:`AuthError` (no credentials for Basic, token endpoint refusing).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from berth.errors import BerthError, InvalidArgument


class AuthError(BerthError):
    """Credentials missing or refused. ``status`` is what the Engine API answers."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Credentials:
    """What a client hands over for one registry. Empty username and password = anonymous."""

    username: str = ""
    password: str = ""
    server_address: str = ""
    identity_token: str = ""
    registry_token: str = ""

    @property
    def anonymous(self) -> bool:
        return not (self.username or self.password or self.identity_token or self.registry_token)

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def _b64decode(value: str) -> bytes:
    value = value.strip()
    pad = "=" * (-len(value) % 4)
    try:
        return base64.urlsafe_b64decode(value + pad)
    except (binascii.Error, ValueError):
        return base64.b64decode(value + pad)


def decode_registry_auth(header: str | None) -> Credentials:
    """Decode ``X-Registry-Auth``. Missing or ``{}`` gives anonymous credentials.

    Also accepts the ``auth`` field (base64 ``user:pass``) the CLI's config file uses.
    Raises InvalidArgument for a header that is not base64 JSON.
    """
    if not header:
        return Credentials()
    try:
        data = json.loads(_b64decode(header) or b"{}")
    except (binascii.Error, ValueError):
        raise InvalidArgument("invalid X-Registry-Auth header") from None
    if not isinstance(data, dict):
        raise InvalidArgument("invalid X-Registry-Auth header")
    return credentials_from_dict(data)


def credentials_from_dict(data: dict[str, Any]) -> Credentials:
    """``{username,password,serveraddress,auth,identitytoken,registrytoken}`` (any case)."""
    d = {str(k).lower(): v for k, v in data.items()}
    user, password = str(d.get("username") or ""), str(d.get("password") or "")
    if not user and d.get("auth"):
        try:
            user, _, password = _b64decode(str(d["auth"])).decode().partition(":")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise InvalidArgument("invalid auth field in registry credentials") from None
    return Credentials(user, password, str(d.get("serveraddress") or ""),
                       str(d.get("identitytoken") or ""), str(d.get("registrytoken") or ""))


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "basic" or "bearer"
    params: dict[str, str]


_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


def parse_challenges(header: str | None) -> list[Challenge]:
    """Parse ``WWW-Authenticate`` (``Bearer realm="..",service="..",scope=".."``, ``Basic realm=".."``)."""
    out: list[Challenge] = []
    if not header:
        return out
    s = header.strip()
    while s:
        m = re.match(r"([A-Za-z][A-Za-z0-9_-]*)\s*", s)
        if m is None:
            break
        scheme = m.group(1).lower()
        s = s[m.end():]
        params: dict[str, str] = {}
        while True:
            pm = _PARAM.match(s)
            if pm is None or (pm.group(2) is None and pm.group(3) is None):
                break
            value = pm.group(2) if pm.group(2) is not None else pm.group(3)
            params[pm.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
            s = s[pm.end():]
        out.append(Challenge(scheme, params))
        s = s.lstrip(", ")
    return out


# fetch(url, headers) -> (status, body)
TokenFetcher = Callable[[str, dict[str, str]], Awaitable[tuple[int, bytes]]]


class Authenticator:
    """Turns challenges into ``Authorization`` headers; caches bearer tokens per scope.

    One per RegistryClient (shared by all repositories); ``fetch`` performs the token request
    through the client's transport.
    """

    def __init__(self, fetch: TokenFetcher, clock: Callable[[], float] = time.monotonic):
        self._fetch = fetch
        self._clock = clock
        self._tokens: dict[tuple[str, str, tuple[str, ...], str], tuple[str, float]] = {}
        self.challenges: dict[str, Challenge] = {}  # host → last challenge seen
        self.token_requests = 0

    async def header(self, host: str, creds: Credentials, scopes: list[str],
                     what: str) -> str | None:
        """The Authorization header for ``host`` (None if no challenge is known yet).

        ``what`` names the failed request for the ``no basic auth credentials`` message.
        """
        ch = self.challenges.get(host)
        if ch is None:
            return None
        if ch.scheme == "basic":
            if creds.anonymous or not creds.username:
                raise AuthError(f"{what}: no basic auth credentials", status=500)
            return creds.basic()
        if ch.scheme == "bearer":
            if creds.registry_token:
                return "Bearer " + creds.registry_token
            return "Bearer " + await self._token(ch, creds, scopes)
        raise AuthError(f"{what}: unsupported authentication scheme {ch.scheme!r}", status=500)

    async def _token(self, ch: Challenge, creds: Credentials, scopes: list[str]) -> str:
        realm = ch.params.get("realm", "")
        if not realm:
            raise AuthError("bearer challenge without a realm", status=500)
        service = ch.params.get("service", "")
        key = (realm, service, tuple(sorted(scopes)), creds.username)
        cached = self._tokens.get(key)
        if cached and cached[1] > self._clock():
            return cached[0]
        query: list[tuple[str, str]] = []
        if service:
            query.append(("service", service))
        query.extend(("scope", s) for s in scopes)
        headers: dict[str, str] = {}
        if not creds.anonymous and creds.username:
            query.append(("account", creds.username))
            headers["Authorization"] = creds.basic()
        url = realm + ("&" if "?" in realm else "?") + urlencode(query)
        self.token_requests += 1
        status, body = await self._fetch(url, headers)
        if status in (401, 403):
            raise AuthError(f"failed to authorize: {status} {'Unauthorized' if status == 401 else 'Forbidden'}"
                            if creds.anonymous else "unauthorized: incorrect username or password")
        if status != 200:
            raise AuthError(f"failed to fetch token from {realm}: status {status}", status=500)
        try:
            data = json.loads(body)
            token = data.get("token") or data.get("access_token")
            expires = int(data.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            token, expires = None, 0
        if not token:
            raise AuthError(f"token endpoint {realm} returned no token", status=500)
        self._tokens[key] = (token, self._clock() + max(expires - 5, 1))
        return token
