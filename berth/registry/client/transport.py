"""RegistryClient: the Distribution API (v2) over an injectable aiohttp session.

The client picks endpoints (mirrors first for docker.io pulls; HTTP for loopback and insecure
registries, HTTPS otherwise), answers auth challenges through :class:`Authenticator`, follows
redirects itself (dropping ``Authorization`` when the host changes) and maps registry errors to
:class:`RegistryError`. A :class:`Repository` is the per-repository view pull and push use.

Lifecycle: create with a session factory (tests pass one bound to fakes), use, ``await close()``.
Raises RegistryError (registry said no, connection failed) and AuthError (credentials).
"""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import json
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import aiohttp

from berth.errors import BerthError
from berth.registry.client.auth import Authenticator, AuthError, Credentials, parse_challenges

HUB_DOMAIN = "docker.io"
HUB_ORIGIN = "https://registry-1.docker.io"
HUB_LOGIN_ADDRESSES = ("docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/",
                       "https://index.docker.io/v1", "https://registry-1.docker.io")

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+prettyjws",
                  "application/vnd.docker.distribution.manifest.v1+json")
MANIFEST_ACCEPT = ", ".join([DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX])
MAX_MANIFEST = 4 << 20
CHUNK_THRESHOLD = 16 << 20  # blobs above this are uploaded with chunked PATCHes
_REDIRECTS = (301, 302, 303, 307, 308)


class RegistryError(BerthError):
    """A registry answered with an error, or could not be reached.

    ``status`` is the Engine API status; ``code`` the Distribution error code (``MANIFEST_UNKNOWN``),
    ``http_status`` what the registry answered (0 if unreachable).
    """

    def __init__(self, message: str, status: int = 500, code: str = "", http_status: int = 0,
                 retriable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.http_status = http_status
        self.retriable = retriable


@dataclass(frozen=True)
class Endpoint:
    """Where to talk to a registry: ``http://127.0.0.1:5000``. ``mirror`` for pull-only mirrors."""

    base: str
    mirror: bool = False

    @property
    def host(self) -> str:
        return urlsplit(self.base).netloc


@dataclass(frozen=True)
class Manifest:
    body: bytes
    media_type: str
    digest: str

    def json(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.body)
        except ValueError:
            raise RegistryError("invalid manifest: not JSON") from None
        if not isinstance(doc, dict):
            raise RegistryError("invalid manifest: not a JSON object")
        return doc


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _split_host(host: str) -> str:
    """``127.0.0.1:5000`` → ``127.0.0.1``; ``[::1]:5000`` → ``::1``."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(host: str) -> bool:
    name = _split_host(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


async def registry_error(resp: aiohttp.ClientResponse, what: str = "") -> RegistryError:
    """A RegistryError from an error response's ``{"errors":[{"code","message"}]}`` body."""
    try:
        body = await resp.content.read(64 << 10)
    except (aiohttp.ClientError, OSError):
        body = b""
    finally:
        resp.release()
    code, text = "", ""
    try:
        first = json.loads(body)["errors"][0]
        code = str(first.get("code") or "")
        msg = str(first.get("message") or "")
        text = f"{code.lower().replace('_', ' ')}: {msg}" if code else msg
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        pass
    if not text:
        text = f"received unexpected HTTP status: {resp.status} {resp.reason or ''}".rstrip()
        if what:
            text = f"{what}: {text}"
    status = {404: 404, 401: 401, 403: 403}.get(resp.status, 500)
    return RegistryError(text, status=status, code=code, http_status=resp.status,
                         retriable=resp.status >= 500 or resp.status == 429)


def _describe(method: str, url: str) -> str:
    return f'{method.title()} "{url}"'


def _connect_error(method: str, url: str, e: BaseException) -> RegistryError:
    host = urlsplit(url).netloc
    cause = getattr(e, "os_error", None) or e.__cause__ or e
    if isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED:
        detail = f"dial tcp {host}: connect: connection refused"
    else:
        detail = str(e) or e.__class__.__name__
    return RegistryError(f"{_describe(method, url)}: {detail}", retriable=True)


Body = bytes | Callable[[], AsyncIterator[bytes]] | None


class RegistryClient:
    """Talks the Distribution API to any number of registries. Not bound to one repository.

    ``session_factory`` builds the aiohttp session on first use (the transport seam);
    ``insecure`` are ``host[:port]`` names or CIDRs reached over plain HTTP (loopback always is);
    ``mirrors`` are endpoint URLs tried before ``hub_origin`` for docker.io pulls.
    """

    def __init__(self, session_factory: Callable[[], aiohttp.ClientSession] | None = None, *,
                 insecure: Iterable[str] = (), mirrors: Iterable[str] = (),
                 hub_origin: str = HUB_ORIGIN, loopback_only: bool = False) -> None:
        self._factory = session_factory or _default_session
        self.loopback_only = loopback_only  # tests: never reach past 127.0.0.0/8 and ::1
        self._session: aiohttp.ClientSession | None = None
        self.insecure = list(insecure)
        self.mirrors = [m.rstrip("/") for m in mirrors]
        self.hub_origin = hub_origin.rstrip("/")
        self.auth = Authenticator(self._fetch_token)

    async def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = self._factory()
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    # -- endpoints -----------------------------------------------------------------------------
    def is_insecure(self, host: str) -> bool:
        if is_loopback(host):
            return True
        name = _split_host(host)
        for entry in self.insecure:
            entry = entry.strip()
            if "://" in entry:
                entry = urlsplit(entry).netloc
            if entry in (host, name):
                return True
            if "/" in entry:
                try:
                    if ipaddress.ip_address(name) in ipaddress.ip_network(entry, strict=False):
                        return True
                except ValueError:
                    continue
        return False

    def origin(self, domain: str) -> Endpoint:
        if domain in (HUB_DOMAIN, "index.docker.io", "registry-1.docker.io"):
            return Endpoint(self.hub_origin)
        return Endpoint(("http://" if self.is_insecure(domain) else "https://") + domain)

    def endpoints(self, domain: str, pull: bool = True) -> list[Endpoint]:
        """Where to reach ``domain``: docker.io pulls try the mirrors first, then the origin."""
        out = []
        if pull and domain == HUB_DOMAIN:
            out = [Endpoint(m if "://" in m else "https://" + m, mirror=True) for m in self.mirrors]
        return out + [self.origin(domain)]

    def login_endpoint(self, server_address: str) -> Endpoint:
        """The endpoint ``docker login ADDRESS`` checks (``https://index.docker.io/v1/`` = Hub)."""
        addr = (server_address or "").strip()
        if not addr or addr in HUB_LOGIN_ADDRESSES:
            return Endpoint(self.hub_origin)
        if "://" in addr:
            parts = urlsplit(addr)
            scheme = "http" if parts.scheme == "http" or self.is_insecure(parts.netloc) else "https"
            return Endpoint(f"{scheme}://{parts.netloc}")
        return self.origin(addr.split("/", 1)[0])

    def repository(self, endpoint: Endpoint, path: str, creds: Credentials,
                   push: bool = False, mount_from: Iterable[str] = ()) -> Repository:
        return Repository(self, endpoint, path, creds, push, list(mount_from))

    # -- requests ------------------------------------------------------------------------------
    def _check_allowed(self, method: str, url: str) -> None:
        host = urlsplit(url).netloc
        if self.loopback_only and not is_loopback(host):
            raise RegistryError(f"{_describe(method, url)}: dial tcp {host}: registry access is limited "
                                "to loopback addresses (BERTH_REGISTRY_LOOPBACK_ONLY)")

    async def _fetch_token(self, url: str, headers: dict[str, str]) -> tuple[int, bytes]:
        self._check_allowed("GET", url)
        session = await self.session()
        try:
            async with session.get(url, headers=headers) as resp:
                return resp.status, await resp.content.read(1 << 20)
        except aiohttp.ClientError as e:
            raise _connect_error("GET", url, e) from None

    async def _send(self, method: str, url: str, headers: dict[str, str], data: Body,
                    follow: bool) -> aiohttp.ClientResponse:
        self._check_allowed(method, url)
        session = await self.session()
        for _ in range(10):
            self._check_allowed(method, url)
            body: Any = data() if callable(data) else data
            try:
                resp = await session.request(method, url, headers=headers, data=body,
                                             allow_redirects=False)
            except aiohttp.ClientError as e:
                raise _connect_error(method, url, e) from None
            if not follow or resp.status not in _REDIRECTS or "Location" not in resp.headers:
                return resp
            new = urljoin(url, resp.headers["Location"])
            resp.release()
            if urlsplit(new).netloc != urlsplit(url).netloc:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            if resp.status == 303:
                method, data = "GET", None
            url = new
        raise RegistryError(f"{_describe(method, url)}: stopped after 10 redirects")

    async def request(self, method: str, url: str, creds: Credentials, scopes: list[str], *,
                      headers: dict[str, str] | None = None, data: Body = None,
                      follow: bool = True) -> aiohttp.ClientResponse:
        """Send, answering one auth challenge. The caller releases the response.

        A 401 that remains after the challenge is returned as is; AuthError if credentials are
        needed and missing; RegistryError if the registry cannot be reached.
        """
        host = urlsplit(url).netloc
        what = _describe("HEAD" if method == "HEAD" else method, url)
        for attempt in range(2):
            h = dict(headers or {})
            auth = await self.auth.header(host, creds, scopes, what)
            if auth:
                h["Authorization"] = auth
            resp = await self._send(method, url, h, data, follow)
            if resp.status != 401 or attempt == 1:
                return resp
            challenges = parse_challenges(resp.headers.get("WWW-Authenticate"))
            usable = [c for c in challenges if c.scheme == "bearer"] or \
                [c for c in challenges if c.scheme == "basic"]
            if not usable or (auth and self.auth.challenges.get(host) == usable[0]
                              and usable[0].scheme == "basic"):
                return resp
            resp.release()
            self.auth.challenges[host] = usable[0]
        raise AssertionError("unreachable")  # pragma: no cover

    async def ping(self, endpoint: Endpoint, creds: Credentials) -> None:
        """``GET /v2/`` with ``creds``. Raises AuthError (refused) or RegistryError."""
        url = endpoint.base + "/v2/"
        resp = await self.request("GET", url, creds, [])
        try:
            if resp.status == 200:
                return
            if resp.status == 401:
                raise AuthError(f"login attempt to {url} failed with status: 401 Unauthorized")
            raise RegistryError(f"login attempt to {url} failed with status: {resp.status} {resp.reason}")
        finally:
            resp.release()

    async def login(self, server_address: str, creds: Credentials) -> None:
        """What ``POST /auth`` does: check ``/v2/`` of the registry with ``creds``.

        Raises AuthError(401, ``login attempt to <url> failed with status: 401 Unauthorized``).
        """
        endpoint = self.login_endpoint(server_address)
        url = endpoint.base + "/v2/"
        try:
            await self.ping(endpoint, creds)
        except AuthError as e:
            if e.message.startswith("login attempt"):
                raise
            raise AuthError(f"login attempt to {url} failed with status: 401 Unauthorized") from None


def _default_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120),
        auto_decompress=False,
        connector=aiohttp.TCPConnector(limit=16),
    )


class Repository:
    """One repository on one endpoint, with the credentials and scopes of one operation."""

    def __init__(self, client: RegistryClient, endpoint: Endpoint, path: str, creds: Credentials,
                 push: bool = False, mount_from: list[str] | None = None) -> None:
        self.client = client
        self.endpoint = endpoint
        self.path = path
        self.creds = creds
        actions = "pull,push" if push else "pull"
        self.scopes = [f"repository:{path}:{actions}"] + \
            [f"repository:{src}:pull" for src in (mount_from or []) if src != path]

    def url(self, suffix: str) -> str:
        return f"{self.endpoint.base}/v2/{self.path}/{suffix}"

    async def _req(self, method: str, url: str, **kw: Any) -> aiohttp.ClientResponse:
        return await self.client.request(method, url, self.creds, self.scopes, **kw)

    # -- manifests -----------------------------------------------------------------------------
    async def head_manifest(self, ref: str) -> str | None:
        """The digest of manifest ``ref`` (tag or digest), or None if the registry does not say.

        Raises RegistryError(404, MANIFEST_UNKNOWN/NAME_UNKNOWN) if it is not there.
        """
        url = self.url(f"manifests/{ref}")
        resp = await self._req("HEAD", url, headers={"Accept": MANIFEST_ACCEPT})
        if resp.status == 200:
            resp.release()
            return resp.headers.get("Docker-Content-Digest")
        if resp.status == 404:
            resp.release()
            raise RegistryError("manifest unknown: manifest unknown", status=404,
                                code="MANIFEST_UNKNOWN", http_status=404)
        raise await registry_error(resp, _describe("HEAD", url))

    async def get_manifest(self, ref: str) -> Manifest:
        """Fetch manifest ``ref``; verified against ``ref`` when it is a digest. Raises RegistryError."""
        url = self.url(f"manifests/{ref}")
        resp = await self._req("GET", url, headers={"Accept": MANIFEST_ACCEPT})
        if resp.status != 200:
            raise await registry_error(resp, _describe("GET", url))
        try:
            body = await resp.content.read(MAX_MANIFEST + 1)
        except (aiohttp.ClientError, OSError) as e:
            raise RegistryError(f"{_describe('GET', url)}: {e}", retriable=True) from None
        finally:
            resp.release()
        if len(body) > MAX_MANIFEST:
            raise RegistryError(f"manifest {ref} is larger than {MAX_MANIFEST} bytes")
        digest = sha256(body)
        if ref.startswith("sha256:") and digest != ref:
            raise RegistryError(f"manifest verification failed for digest {ref}")
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        try:
            field = json.loads(body).get("mediaType")
        except (ValueError, AttributeError):
            field = None
        if field and media_type not in (DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX):
            media_type = field
        elif not media_type or media_type in ("application/json", "text/plain"):
            media_type = field or OCI_MANIFEST
        return Manifest(body, media_type, digest)

    async def put_manifest(self, ref: str, body: bytes, media_type: str) -> str:
        """PUT a manifest under ``ref``; returns its digest. Raises RegistryError, AuthError."""
        url = self.url(f"manifests/{ref}")
        resp = await self._req("PUT", url, headers={"Content-Type": media_type}, data=body)
        if resp.status not in (200, 201, 202):
            raise await _push_error(resp, url)
        resp.release()
        digest = sha256(body)
        said = resp.headers.get("Docker-Content-Digest")
        if said and said != digest:
            raise RegistryError(f"registry says the manifest digest is {said}, expected {digest}")
        return digest

    async def tags(self) -> list[str]:
        """Every tag of the repository (following ``Link`` pagination). Raises RegistryError."""
        out: list[str] = []
        url: str | None = self.url("tags/list")
        while url:
            resp = await self._req("GET", url)
            if resp.status != 200:
                raise await registry_error(resp, _describe("GET", url))
            try:
                data = json.loads(await resp.content.read(MAX_MANIFEST))
            except ValueError:
                raise RegistryError("invalid tags list") from None
            finally:
                resp.release()
            out.extend(data.get("tags") or [])
            link = resp.headers.get("Link", "")
            url = urljoin(url, link.split(";")[0].strip("<> ")) if link.startswith("<") else None
        return out

    # -- blobs ---------------------------------------------------------------------------------
    async def open_blob(self, digest: str, offset: int = 0) -> aiohttp.ClientResponse:
        """GET a blob (from ``offset`` if > 0: the answer may be 206 or a full 200).

        The caller reads and releases it. Raises RegistryError (retriable for 5xx).
        """
        url = self.url(f"blobs/{digest}")
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        resp = await self._req("GET", url, headers=headers)
        if resp.status in (200, 206):
            return resp
        raise await registry_error(resp, _describe("GET", url))

    async def read_blob(self, digest: str, limit: int = 32 << 20) -> bytes:
        """A small blob (a config), verified. Raises RegistryError."""
        resp = await self.open_blob(digest)
        try:
            data = await resp.content.read(limit + 1)
        except (aiohttp.ClientError, OSError) as e:
            raise RegistryError(f"failed to read blob {digest}: {e}", retriable=True) from None
        finally:
            resp.release()
        if len(data) > limit or sha256(data) != digest:
            raise RegistryError(f"blob {digest}: verification failed (digest mismatch)")
        return data

    async def blob_size(self, digest: str) -> int | None:
        """HEAD a blob: its size, or None if the repository does not have it."""
        url = self.url(f"blobs/{digest}")
        resp = await self._req("HEAD", url)
        resp.release()
        if resp.status == 200:
            return int(resp.headers.get("Content-Length") or 0)
        if resp.status == 404:
            return None
        if resp.status in (401, 403):
            raise AuthError(_denied(self))
        raise RegistryError(f"{_describe('HEAD', url)}: received unexpected HTTP status: {resp.status}",
                            retriable=resp.status >= 500)

    async def mount(self, digest: str, source: str) -> bool:
        """Cross-repository mount of ``digest`` from ``source``; True if the registry did it.

        A session the registry opened instead (202) is cancelled.
        """
        url = self.url("blobs/uploads/") + "?" + urlencode({"mount": digest, "from": source})
        resp = await self._req("POST", url)
        resp.release()
        if resp.status == 201:
            return True
        if resp.status == 202 and resp.headers.get("Location"):
            cancel = await self._req("DELETE", urljoin(url, resp.headers["Location"]))
            cancel.release()
        elif resp.status in (401, 403):
            raise AuthError(_denied(self))
        return False

    async def upload(self, digest: str, size: int, read: Callable[[int, int], Any],
                     progress: Callable[[int], None] | None = None) -> None:
        """Upload a blob: POST, then one PUT, or PATCHes of 16 MiB and a closing PUT.

        ``read(offset, n)`` is an async callable returning bytes. Raises RegistryError, AuthError.
        """
        url = self.url("blobs/uploads/")
        resp = await self._req("POST", url, headers={"Content-Length": "0"})
        if resp.status not in (202, 201):
            raise await _push_error(resp, url)
        resp.release()
        if resp.status == 201:  # the registry already had it
            return
        location = urljoin(url, resp.headers.get("Location", ""))
        sent = 0

        def body(start: int, end: int) -> Callable[[], AsyncIterator[bytes]]:
            async def gen() -> AsyncIterator[bytes]:
                nonlocal sent
                pos = start
                sent = start
                while pos < end:
                    data = await read(pos, min(1 << 20, end - pos))
                    if not data:
                        raise RegistryError(f"blob {digest}: short read at {pos}")
                    pos += len(data)
                    sent = pos
                    if progress:
                        progress(sent)
                    yield data
            return gen

        if size > CHUNK_THRESHOLD:
            for start in range(0, size, CHUNK_THRESHOLD):
                end = min(size, start + CHUNK_THRESHOLD)
                resp = await self._req("PATCH", location, data=body(start, end), headers={
                    "Content-Type": "application/octet-stream", "Content-Length": str(end - start),
                    "Content-Range": f"{start}-{end - 1}"})
                if resp.status != 202:
                    raise await _push_error(resp, location)
                resp.release()
                location = urljoin(location, resp.headers.get("Location", location))
            final = _with_query(location, {"digest": digest})
            resp = await self._req("PUT", final, headers={"Content-Length": "0"}, data=b"")
        else:
            final = _with_query(location, {"digest": digest})
            resp = await self._req("PUT", final, data=body(0, size), headers={
                "Content-Type": "application/octet-stream", "Content-Length": str(size)})
        if resp.status not in (201, 204):
            raise await _push_error(resp, final)
        resp.release()


def _with_query(url: str, params: dict[str, str]) -> str:
    return url + ("&" if urlsplit(url).query else "?") + urlencode(params)


def _denied(repo: Repository) -> str:
    return "denied: requested access to the resource is denied"


async def _push_error(resp: aiohttp.ClientResponse, url: str) -> BerthError:
    if resp.status in (401, 403):
        err = await registry_error(resp)
        if err.code in ("", "UNAUTHORIZED", "DENIED"):
            return AuthError(err.message if err.code else "unauthorized: authentication required")
        return err
    return await registry_error(resp, _describe("PUT", url))
