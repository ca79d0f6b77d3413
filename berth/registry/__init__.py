"""Registry support: ``server/`` serves the Docker Registry HTTP API v2 (OCI distribution).

The registry client (pull, push, auth challenges) will live in ``client/``.
"""
