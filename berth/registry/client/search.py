"""``GET /images/search``: dockerd's registry search over the v1 search API (``/v1/search``).

As dockerd (moby ``registry/search.go``, ``search_endpoint_v1.go``, ``search_session.go``):

- filters ``is-automated``, ``is-official`` and ``stars`` are checked first (anything else is
  ``invalid filter 'NAME'``); ``is-automated=true`` gives no results without asking anyone;
- the term splits into an index and a query: ``127.0.0.1:5000/app`` asks ``127.0.0.1:5000`` for
  ``app``; a first component without ``.``, ``:`` or ``localhost`` means Docker Hub's index
  (``https://index.docker.io``) and ``library/`` is dropped from the query;
- another index is pinged first (``GET /v1/_ping``, any HTTP answer will do): over HTTPS, then,
  for an insecure (or loopback) registry, over plain HTTP; neither answering is 400
  ``invalid registry endpoint ...``;
- ``GET /v1/search?q=QUERY&n=LIMIT`` (limit 25 by default, 1..100) with ``X-Docker-Token: true``
  and Basic credentials when the caller has a user name (a Bearer or Basic challenge is answered
  as for pulls); any status but 200 is ``Unexpected status code N`` (500);
- the ``results`` are filtered here, ``is_automated`` forced to false.

Departure: an HTTPS endpoint that answered the ping is then used with certificate checks even
for an insecure registry (dockerd skips verification there).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

import aiohttp

from berth.errors import InvalidArgument
from berth.registry.client.auth import AuthError, Credentials
from berth.registry.client.transport import HUB_ORIGIN, RegistryClient, RegistryError, _connect_error

HUB_INDEX = "https://index.docker.io"
INDEX_NAME = "docker.io"
DEFAULT_LIMIT = 25
ACCEPTED_FILTERS = ("is-automated", "is-official", "stars")
SEARCH_SCOPE = "registry:catalog:search"
_INT = re.compile(r"[+-]?[0-9]+")


def split_term(term: str) -> tuple[str, str]:
    """``(index name, query)``: moby's ``splitReposSearchTerm`` (``docker.io`` for Hub)."""
    first, sep, rest = term.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost"):
        return INDEX_NAME, term
    if first == "index.docker.io":
        first = INDEX_NAME
    return first, rest


def _invalid_filter(name: str, values: list[str] | None = None) -> InvalidArgument:
    return InvalidArgument(f"invalid filter '{name}" + (f"={','.join(values)}" if values is not None else "") + "'")


def _bool_filter(filters: dict[str, list[str]], name: str) -> bool:
    """filters.Args.GetBoolOrDefault(name, false)."""
    if name not in filters:
        return False
    values = filters[name]
    if not values:
        raise _invalid_filter(name)
    is_false = "0" in values or "false" in values
    is_true = "1" in values or "true" in values
    if is_false == is_true:
        raise _invalid_filter(name, values)
    return is_true


def check_filters(filters: dict[str, list[str]]) -> tuple[bool, bool | None, int | None]:
    """``(is-automated, is-official or None, minimum stars or None)``; raises InvalidArgument."""
    for name in filters:
        if name not in ACCEPTED_FILTERS:
            raise _invalid_filter(name)
    automated = _bool_filter(filters, "is-automated")
    official = _bool_filter(filters, "is-official") if "is-official" in filters else None
    stars: int | None = None
    if "stars" in filters:
        stars = 0
        for v in filters["stars"]:
            if not _INT.fullmatch(v):
                raise InvalidArgument(f"invalid filter 'stars={v}': strconv.Atoi: parsing {json.dumps(v)}: "
                                      "invalid syntax")
            stars = max(stars, int(v))
    return automated, official, stars


def _check_index(name: str) -> None:
    """A little of moby's validateHostPort: the port, if any, must be a number up to 65535."""
    host, sep, port = name.rpartition(":")
    if not sep or "]" in port or (host.count(":") and not host.startswith("[")):
        return
    if not port.isdigit() or int(port) > 65535:
        raise InvalidArgument(f'invalid port "{port}"')


def _result(item: Any) -> dict[str, Any]:
    """One SearchResult as dockerd re-encodes it (its fields, its order, is_automated false)."""
    if not isinstance(item, dict):
        raise RegistryError("error decoding registry search results: json: cannot unmarshal "
                            "into Go value of type registry.SearchResult")
    stars = item.get("star_count")
    return {"star_count": stars if isinstance(stars, int) and not isinstance(stars, bool) else 0,
            "is_official": item.get("is_official") is True,
            "name": str(item.get("name") or ""),
            "is_automated": False,
            "description": str(item.get("description") or "")}


class Searcher:
    """Search over a RegistryClient (its session, its auth cache, its loopback-only rule)."""

    def __init__(self, client: RegistryClient) -> None:
        self.client = client

    def hub_index(self) -> str:
        # the client's hub origin is replaced in tests; then it stands for the index as well
        return HUB_INDEX if self.client.hub_origin == HUB_ORIGIN else self.client.hub_origin

    async def search(self, term: str, limit: int, filters: dict[str, list[str]],
                     creds: Credentials) -> list[dict[str, Any]]:
        """The filtered results. Raises InvalidArgument (400), RegistryError, AuthError."""
        automated, official, stars = check_filters(filters)
        if automated:
            return []
        data = await self.search_unfiltered(term, limit, creds)
        out = []
        for r in data:
            if official is not None and r["is_official"] != official:
                continue
            if stars is not None and r["star_count"] < stars:
                continue
            out.append(r)
        return out

    async def search_unfiltered(self, term: str, limit: int, creds: Credentials) -> list[dict[str, Any]]:
        if "://" in term:
            raise InvalidArgument(f"invalid repository name: repository name ({term}) should not have a scheme")
        index, query = split_term(term)
        if index == INDEX_NAME:
            base = self.hub_index()
            query = query.removeprefix("library/")
        else:
            _check_index(index)
            base = await self._endpoint(index)
        if limit == 0:
            limit = DEFAULT_LIMIT
        if limit < 1 or limit > 100:
            raise InvalidArgument(f"limit {limit} is outside the range of [1, 100]")
        url = f"{base}/v1/search?q={quote(query, safe='')}&n={limit}"
        headers = {"X-Docker-Token": "true"}
        if creds.username:
            headers["Authorization"] = creds.basic()
        try:
            resp = await self.client.request("GET", url, creds, [SEARCH_SCOPE], headers=headers)
        except AuthError:
            if creds.anonymous:  # dockerd sends nothing and reports the registry's 401
                raise RegistryError("Unexpected status code 401", status=500) from None
            raise
        try:
            if resp.status != 200:
                raise RegistryError(f"Unexpected status code {resp.status}", status=500,
                                    http_status=resp.status)
            try:
                body = await resp.content.read(16 << 20)
            except (aiohttp.ClientError, OSError) as e:
                raise RegistryError(f"error decoding registry search results: {e}") from None
        finally:
            resp.release()
        try:
            doc = json.loads(body)
        except ValueError as e:
            raise RegistryError(f"error decoding registry search results: {e}") from None
        results = doc.get("results") if isinstance(doc, dict) else None
        if results is None:
            return []
        if not isinstance(results, list):
            raise RegistryError("error decoding registry search results: json: cannot unmarshal "
                                "into Go struct field SearchResults.results")
        return [_result(r) for r in results]

    async def _endpoint(self, index: str) -> str:
        """``https://INDEX`` or, for an insecure registry that does not answer HTTPS, ``http://``."""
        secure = not self.client.is_insecure(index)
        https = f"https://{index}"
        err = await self._ping(https, verify=secure)
        if err is None:
            return https
        if secure:
            raise InvalidArgument(
                f"invalid registry endpoint {https}/v1/: {err}. If this private registry supports only HTTP "
                f"or HTTPS with an unknown CA certificate, please add `--insecure-registry {index}` to the "
                "daemon's arguments. In the case of HTTPS, if you have access to the registry's CA "
                f"certificate, no need for the flag; simply place the CA certificate at "
                f"/etc/docker/certs.d/{index}/ca.crt")
        http = f"http://{index}"
        err2 = await self._ping(http, verify=False)
        if err2 is not None:
            raise InvalidArgument(f'invalid registry endpoint "{http}/v1/". HTTPS attempt: {err}. '
                                  f"HTTP attempt: {err2}")
        return http

    async def _ping(self, base: str, verify: bool) -> str | None:
        """``GET BASE/v1/_ping``: None if anything answered, else the error's text."""
        url = base + "/v1/_ping"
        self.client._check_allowed("GET", url)
        session = await self.client.session()
        try:
            async with session.get(url, ssl=verify) as resp:
                await resp.content.read(1 << 16)
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            return _connect_error("GET", url, e).message
        return None


async def search(client: RegistryClient, term: str, limit: int, filters: dict[str, list[str]],
                 creds: Credentials) -> list[dict[str, Any]]:
    return await Searcher(client).search(term, limit, filters, creds)
