"""Registry credentials as docker's CLI keeps them, and image reference names.

Credentials live in ``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``) under
``auths.<server>.auth`` = base64(``user:password``), the file mode 0600. Pull and push send
them as ``X-Registry-Auth`` (base64url JSON), chosen by the registry host of the reference;
Docker Hub's key is ``https://index.docker.io/v1/``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile

from berth.cli.context import CLIError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

INDEX_SERVER = "https://index.docker.io/v1/"
DEFAULT_DOMAIN = "docker.io"
_HUB_NAMES = {"docker.io", "index.docker.io", "registry-1.docker.io", INDEX_SERVER,
              "https://index.docker.io", "https://docker.io"}
ANONYMOUS = "e30="  # base64url("{}")


# ---- references -------------------------------------------------------------------------

_NAME_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")


class Reference:
    """A parsed image reference: ``domain``, ``path``, ``tag``, ``digest`` (docker's rules)."""

    def __init__(self, domain: str, path: str, tag: str, digest: str) -> None:
        self.domain = domain
        self.path = path
        self.tag = tag
        self.digest = digest

    @property
    def name(self) -> str:
        """Fully qualified repository: ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    def string(self) -> str:
        """``docker.io/library/busybox:latest`` / ``...@sha256:..``, as typed otherwise."""
        s = self.name
        if self.tag:
            s += ":" + self.tag
        if self.digest:
            s += "@" + self.digest
        return s

    @property
    def familiar_name(self) -> str:
        if self.domain == DEFAULT_DOMAIN:
            return self.path[len("library/"):] if self.path.startswith("library/") else self.path
        return self.name

    @property
    def index_server(self) -> str:
        """The key of this reference's registry in config.json."""
        return INDEX_SERVER if self.domain == DEFAULT_DOMAIN else self.domain


def parse_reference(ref: str) -> Reference:
    """docker's ``ParseNormalizedNamed``; raises CLIError ``invalid reference format...``."""
    rest, _, digest = ref.partition("@")
    name, tag = rest, ""
    slash, colon = rest.rfind("/"), rest.rfind(":")
    if colon > slash:
        name, tag = rest[:colon], rest[colon + 1 :]
    first, sep, remainder = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        domain, path = first, remainder
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain == "index.docker.io":
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = "library/" + path
    if not name or (tag and not _TAG.fullmatch(tag)) or (digest and not _DIGEST.fullmatch(digest)):
        raise CLIError("invalid reference format", 1)
    if path != path.lower():
        raise CLIError(f"invalid reference format: repository name ({path}) must be lowercase", 1)
    if not all(_NAME_COMPONENT.fullmatch(c) for c in path.split("/")):
        raise CLIError("invalid reference format", 1)
    return Reference(domain, path, tag, digest)


# ---- config file ------------------------------------------------------------------------


def config_dir() -> str:
    return os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")


def config_path() -> str:
    return os.path.join(config_dir(), "config.json")


def load_config() -> dict[str, Any]:
    """The parsed config file, ``{}`` if there is none (or it is not a JSON object)."""
    try:
        with open(config_path(), encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_config(cfg: dict[str, Any]) -> None:
    """Write config.json atomically with mode 0600 (docker's tab-indented layout)."""
    directory = config_dir()
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="config.json", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(cfg, indent="\t"))
        os.chmod(tmp, 0o600)
        os.replace(tmp, config_path())
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def hostname(server: str) -> str:
    """docker's ``ConvertToHostname``: drop an http(s) scheme and any path."""
    scheme, sep, rest = server.partition("://")
    if sep and scheme in ("http", "https"):
        server = rest
    return server.split("/", 1)[0]


def server_key(server: str | None) -> str:
    """The config.json key for a ``login``/``logout`` argument."""
    if not server or server in _HUB_NAMES or hostname(server) in _HUB_NAMES:
        return INDEX_SERVER
    return hostname(server)


def credentials(server: str) -> dict[str, str] | None:
    """Stored credentials for a config key: ``{"username","password"[,"identitytoken"]}``."""
    entry = (load_config().get("auths") or {}).get(server)
    if not isinstance(entry, dict):
        return None
    out: dict[str, str] = {}
    if entry.get("auth"):
        try:
            user, _, password = base64.b64decode(entry["auth"]).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        out = {"username": user, "password": password}
    if entry.get("identitytoken"):
        out["identitytoken"] = entry["identitytoken"]
    return out or None


def encode_auth(auth: dict[str, str] | None) -> str:
    """The ``X-Registry-Auth`` header value (``e30=`` when anonymous)."""
    if not auth:
        return ANONYMOUS
    data = json.dumps(auth, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(data).decode()


def registry_auth_header(ref: Reference) -> str:
    """X-Registry-Auth for pulling or pushing ``ref`` from the stored credentials."""
    key = ref.index_server
    creds = credentials(key)
    if not creds:
        return ANONYMOUS
    auth = {"username": creds.get("username", ""), "password": creds.get("password", ""),
            "serveraddress": key}
    if creds.get("identitytoken"):
        auth["identitytoken"] = creds["identitytoken"]
    return encode_auth({k: v for k, v in auth.items() if v})


def store_credentials(server: str, username: str, password: str) -> str:
    """Save ``auths.<server>.auth``; returns the config file's path."""
    cfg = load_config()
    auths = cfg.get("auths")
    if not isinstance(auths, dict):
        auths = {}
    auths[server] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    cfg["auths"] = dict(sorted(auths.items()))
    save_config(cfg)
    return config_path()


def erase_credentials(server: str) -> None:
    cfg = load_config()
    auths = cfg.get("auths")
    if isinstance(auths, dict) and server in auths:
        del auths[server]
        save_config(cfg)
