"""Engine API client (stdlib only, imported lazily by the CLI): see :mod:`berth.client.api`."""
