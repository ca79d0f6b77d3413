"""HTTP Basic auth against an htpasswd file of bcrypt entries (``$2y$``/``$2b$``/``$2a$``).

Like the reference registry's ``htpasswd`` access controller, every ``/v2/`` request needs valid
credentials; otherwise 401 UNAUTHORIZED with ``WWW-Authenticate: Basic realm="..."``. The file is
re-read when it changes. Other hash formats (MD5, SHA1, crypt) are ignored, as the reference does.
bcrypt is slow on purpose, so a successful check is remembered (keyed by a sha256 of the
password) until the file changes, and checks run in a thread.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import os
from pathlib import Path

import bcrypt

from berth.registry.server.errors import RegistryError

log = logging.getLogger("berth.registry.auth")


def load_htpasswd(path: Path) -> dict[str, bytes]:
    """``{user: bcrypt hash}`` of the file's bcrypt entries; skips comments and other formats."""
    users: dict[str, bytes] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not hashed.startswith(("$2y$", "$2b$", "$2a$")):
            log.warning("%s:%d: not a bcrypt entry, ignored", path, lineno)
            continue
        users[user] = hashed.encode()
    return users


class HtpasswdAuth:
    """Checks ``Authorization: Basic`` headers against ``path``."""

    def __init__(self, path: str | os.PathLike[str], realm: str = "Registry Realm"):
        self.path = Path(path)
        self.realm = realm
        self._mtime: float | None = None
        self._users: dict[str, bytes] = {}
        self._ok: set[tuple[str, bytes]] = set()
        self._reload()

    def _reload(self) -> None:
        mtime = self.path.stat().st_mtime_ns
        if mtime != self._mtime:
            self._users = load_htpasswd(self.path)
            self._ok.clear()
            self._mtime = mtime

    def challenge(self) -> RegistryError:
        return RegistryError("UNAUTHORIZED", detail=None, headers={
            "WWW-Authenticate": f'Basic realm="{self.realm}"'})

    async def check(self, authorization: str | None) -> str:
        """Return the user name; raise UNAUTHORIZED (with the challenge) otherwise."""
        scheme, _, param = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            raise self.challenge()
        try:
            user, sep, password = base64.b64decode(param.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise self.challenge() from None
        if not sep:
            raise self.challenge()
        try:
            self._reload()
        except FileNotFoundError:
            log.error("htpasswd file %s is gone; refusing everyone", self.path)
            raise self.challenge() from None
        hashed = self._users.get(user)
        if hashed is None:
            raise self.challenge()
        key = (user, hashlib.sha256(hashed + b"\0" + password.encode()).digest())
        if key in self._ok:
            return user
        try:
            ok = await asyncio.to_thread(bcrypt.checkpw, password.encode(), hashed)
        except ValueError:  # a malformed hash in the file, or a password over bcrypt's 72 bytes
            ok = False
        if not ok:
            raise self.challenge()
        self._ok.add(key)
        return user
