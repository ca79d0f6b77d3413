"""Berth's registry server: the Docker Registry HTTP API v2 / OCI distribution spec.

:func:`create_app` builds the aiohttp application over a storage root (see ``storage.py`` for
the layout); :func:`main` is ``berth registry serve|gc``; :func:`collect` is the offline gc.
"""

from berth.registry.server.app import create_app
from berth.registry.server.cli import main
from berth.registry.server.gc import collect

__all__ = ["collect", "create_app", "main"]
