"""The distribution spec's error codes and the ``{"errors": [...]}`` bodies they render to.

Handlers and the storage layer raise :class:`RegistryError`; only ``app.py`` turns it into an
HTTP response. Statuses and messages follow distribution's ``registry/api/v2/errors.go``.
"""

from __future__ import annotations

import json
from typing import Any

# code -> (HTTP status, default message)
CODES: dict[str, tuple[int, str]] = {
    "BLOB_UNKNOWN": (404, "blob unknown to registry"),
    "BLOB_UPLOAD_INVALID": (404, "blob upload invalid"),
    "BLOB_UPLOAD_UNKNOWN": (404, "blob upload unknown to registry"),
    "DIGEST_INVALID": (400, "provided digest did not match uploaded content"),
    "MANIFEST_BLOB_UNKNOWN": (400, "blob unknown to registry"),
    "MANIFEST_INVALID": (400, "manifest invalid"),
    "MANIFEST_UNKNOWN": (404, "manifest unknown"),
    "NAME_INVALID": (400, "invalid repository name"),
    "NAME_UNKNOWN": (404, "repository name not known to registry"),
    "SIZE_INVALID": (400, "provided length did not match content length"),
    "TAG_INVALID": (400, "manifest tag did not match URI"),
    "UNAUTHORIZED": (401, "authentication required"),
    "DENIED": (403, "requested access to the resource is denied"),
    "UNSUPPORTED": (405, "The operation is unsupported."),
    "PAGINATION_NUMBER_INVALID": (400, "invalid number of results requested"),
    "RANGE_INVALID": (416, "invalid content range"),
    "UNKNOWN": (500, "unknown error"),
}


class RegistryError(Exception):
    """One spec error. ``errors`` may carry more than one (e.g. several unknown manifest blobs)."""

    def __init__(self, code: str, message: str | None = None, detail: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        status, default = CODES[code]
        self.code = code
        self.status = status
        self.message = message or default
        self.detail = detail
        self.headers = dict(headers or {})
        self.errors = [self._entry()]
        super().__init__(f"{code}: {self.message}")

    def _entry(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "detail": self.detail}

    def add(self, other: RegistryError) -> None:
        """Append another error of the same response (the status of the first one wins)."""
        self.errors.extend(other.errors)

    def body(self) -> bytes:
        return json.dumps({"errors": self.errors}).encode()
