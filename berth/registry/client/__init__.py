"""Registry client: pull and push over the Distribution API, auth challenges, mirrors.

- transport.py: RegistryClient (endpoints, auth retries, redirects, errors) and Repository.
- auth.py: X-Registry-Auth, WWW-Authenticate challenges, bearer tokens.
- pull.py / push.py: one pull / one push, emitting dockerd's progress events (progress.py).
- memory.py: compressed blob digests remembered per diff id (push reuse, cross-repo mounts).
- service.py: RegistryService, what berthd wires and the API calls.
"""

from berth.registry.client.auth import AuthError, Credentials, decode_registry_auth
from berth.registry.client.service import RegistryService
from berth.registry.client.transport import RegistryClient, RegistryError

__all__ = ["AuthError", "Credentials", "RegistryClient", "RegistryError", "RegistryService",
           "decode_registry_auth"]
