"""The ``berth`` command: docker-compatible verbs over the Engine API (see :mod:`berth.cli.main`)."""
