"""Image references, parsed and normalised like docker/distribution's ``reference`` package.

Grammar: ``[host[:port]/]path[:tag][@algo:hex]``. :func:`parse` is distribution's strict
``Parse``; :func:`parse_normalized` is ``ParseNormalizedNamed`` (docker.io default domain,
``library/`` for official images); :func:`parse_docker_ref` also adds ``:latest`` when neither
tag nor digest is given (and keeps only the digest when both are). Every failure raises
:class:`berth.errors.InvalidArgument` with distribution's message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from berth.errors import InvalidArgument

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEP = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = _ALNUM + r"(?:" + _SEP + _ALNUM + r")*"
_REMOTE_NAME = _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_HOST = r"(?:" + _DOMAIN_NAME + r"|" + _IPV6 + r")"
_DOMAIN_AND_PORT = _HOST + r"(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"
_NAME = r"(?:" + _DOMAIN_AND_PORT + r"/)?" + _REMOTE_NAME

REFERENCE_RE = re.compile(
    r"^(" + _NAME + r")(?::(" + _TAG + r"))?(?:@(" + _DIGEST + r"))?$", re.ASCII)
ANCHORED_NAME_RE = re.compile(r"^(?:(" + _DOMAIN_AND_PORT + r")/)?(" + _REMOTE_NAME + r")$", re.ASCII)
TAG_RE = re.compile(r"^" + _TAG + r"$", re.ASCII)
IDENTIFIER_RE = re.compile(r"^[a-f0-9]{64}$")
_DIGEST_RE = re.compile(r"^" + _DIGEST + r"$", re.ASCII)
_ALGO_SIZES = {"sha256": 64, "sha384": 96, "sha512": 128}

ERR_INVALID_FORMAT = "invalid reference format"


def validate_digest(value: str) -> str:
    """Validate a digest like go-digest's ``Parse``; return it or raise InvalidArgument."""
    algo, sep, encoded = value.partition(":")
    if not algo or not sep or not encoded:
        raise InvalidArgument("invalid checksum digest format")
    if algo not in _ALGO_SIZES:
        if not _DIGEST_RE.match(value):
            raise InvalidArgument("invalid checksum digest format")
        raise InvalidArgument("unsupported digest algorithm")
    if len(encoded) != _ALGO_SIZES[algo]:
        raise InvalidArgument("invalid checksum digest length")
    if not re.fullmatch(r"[a-f0-9]+", encoded):
        raise InvalidArgument("invalid checksum digest format")
    return value


@dataclass(frozen=True)
class Reference:
    """A parsed reference. ``domain`` may be "" only for references from strict :func:`parse`."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The repository name: ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    def __str__(self) -> str:
        s = self.name
        if self.tag is not None:
            s += ":" + self.tag
        if self.digest is not None:
            s += "@" + self.digest
        return s

    def familiar_name(self) -> str:
        """``busybox``, ``myuser/app``, ``127.0.0.1:5000/x`` (docker.io and library/ dropped)."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        path = self.path
        if path.startswith(OFFICIAL_PREFIX) and "/" not in path[len(OFFICIAL_PREFIX):]:
            path = path[len(OFFICIAL_PREFIX):]
        return path

    def familiar_string(self) -> str:
        """``busybox:latest``, ``myuser/app@sha256:..``."""
        s = self.familiar_name()
        if self.tag is not None:
            s += ":" + self.tag
        if self.digest is not None:
            s += "@" + self.digest
        return s

    def is_name_only(self) -> bool:
        return self.tag is None and self.digest is None

    def with_tag(self, tag: str) -> Reference:
        """Same name with ``tag`` (digest kept). Raises InvalidArgument for a bad tag."""
        if not TAG_RE.match(tag):
            raise InvalidArgument(ERR_INVALID_FORMAT)
        return replace(self, tag=tag)

    def name_only(self) -> Reference:
        return Reference(self.domain, self.path)

    def docker_ref(self) -> Reference:
        """``ParseDockerRef`` semantics: digest wins over tag; ``:latest`` if neither."""
        if self.digest is not None:
            return replace(self, tag=None)
        if self.tag is None:
            return replace(self, tag=DEFAULT_TAG)
        return self


def parse(s: str) -> Reference:
    """distribution's strict ``Parse``: no defaults applied. Raises InvalidArgument."""
    m = REFERENCE_RE.match(s)
    if m is None:
        if s == "":
            raise InvalidArgument("repository name must have at least one component")
        if REFERENCE_RE.match(s.lower()) is not None:
            raise InvalidArgument("repository name must be lowercase")
        raise InvalidArgument(ERR_INVALID_FORMAT)
    name, tag, digest = m.group(1), m.group(2), m.group(3)
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidArgument(f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    if digest is not None:
        validate_digest(digest)
    nm = ANCHORED_NAME_RE.match(name)
    if nm is None:  # pragma: no cover - REFERENCE_RE already matched the name
        raise InvalidArgument(ERR_INVALID_FORMAT)
    return Reference(nm.group(1) or "", nm.group(2), tag, digest)


def _split_docker_domain(name: str) -> tuple[str, str]:
    maybe_domain, sep, maybe_remote = name.partition("/")
    if not sep:
        return DEFAULT_DOMAIN, OFFICIAL_PREFIX + name
    if maybe_domain == "localhost":
        domain, remote = maybe_domain, maybe_remote
    elif maybe_domain == LEGACY_DEFAULT_DOMAIN:
        domain, remote = DEFAULT_DOMAIN, maybe_remote
    elif "." in maybe_domain or ":" in maybe_domain:
        domain, remote = maybe_domain, maybe_remote
    elif maybe_domain.lower() != maybe_domain:
        domain, remote = maybe_domain, maybe_remote
    else:
        domain, remote = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = OFFICIAL_PREFIX + remote
    return domain, remote


def parse_normalized(s: str) -> Reference:
    """``ParseNormalizedNamed``: ``busybox`` → ``docker.io/library/busybox``. Raises InvalidArgument."""
    if IDENTIFIER_RE.match(s):
        raise InvalidArgument(
            f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_docker_domain(s)
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise InvalidArgument(f"{ERR_INVALID_FORMAT}: repository name ({remote}) must be lowercase")
    return parse(domain + "/" + remainder)


def parse_docker_ref(s: str) -> Reference:
    """``ParseDockerRef``: normalised, ``:latest`` added, tag dropped when a digest is given."""
    return parse_normalized(s).docker_ref()


def parse_any(s: str) -> Reference | str:
    """``ParseAnyReference``: a 64-hex id or ``algo:hex`` digest gives the digest string;
    anything else is parsed with :func:`parse_normalized`. Raises InvalidArgument."""
    if IDENTIFIER_RE.match(s):
        return "sha256:" + s
    try:
        return validate_digest(s)
    except InvalidArgument:
        pass
    return parse_normalized(s)


def parse_repo_tag(repo: str, tag: str | None) -> Reference:
    """Combine the ``repo``/``tag`` query parameters of import, commit and tag.

    ``repo`` may carry its own tag (``bt/imported:v2``); an explicit ``tag`` replaces it, as in
    moby's ``RepoTagReference``. Returns a normalised, tagged reference (``latest`` by default).
    Raises InvalidArgument.
    """
    ref = parse_normalized(repo)
    if ref.digest is not None:
        raise InvalidArgument("cannot import digest reference")
    if tag:
        ref = ref.with_tag(tag)
    return ref.docker_ref()
