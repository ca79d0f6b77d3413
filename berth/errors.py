"""One exception hierarchy for Berth.

Domain code raises these; only ``berth.api`` maps them to HTTP statuses and only ``berth.cli``
turns them into words for the user. Each carries the message Docker prints for the same case.
"""

from __future__ import annotations


class BerthError(Exception):
    """Base of every error Berth raises on purpose. ``status`` is the HTTP status Docker uses."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(BerthError):
    """Bad input from the user: a flag, a reference, a body, a tarball (400)."""

    status = 400


class NotFound(BerthError):
    """No such container, image, exec instance, file (404)."""

    status = 404


class Conflict(BerthError):
    """The request clashes with the current state: a name in use, a running container (409)."""

    status = 409


class NotModified(BerthError):
    """Nothing to do: start of a running container, stop of a stopped one (304)."""

    status = 304


class StartError(BerthError):
    """The container's process could not be started (Docker answers 400 for OCI runtime errors).

    ``exit_code`` is what the container records: 127 for a missing executable, 126 for a
    permission problem, 128 otherwise.
    """

    status = 400

    def __init__(self, message: str, exit_code: int = 128) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class SystemError_(BerthError):
    """An internal failure that is not the user's fault (500)."""

    status = 500
