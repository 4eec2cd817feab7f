"""One error type for everything a client can get wrong, so every route answers alike.

Handlers raise :class:`ServingError`; the service turns it into a JSON body
``{"error": <message>, "detail": <anything JSON>}`` with the error's HTTP status. Keeping
this free of web-framework imports lets the pure modules (images, sampling, runtime)
raise it too.
"""

from __future__ import annotations

from typing import Any


class ServingError(Exception):
    """A request that cannot be served as asked; ``status`` is a 4xx HTTP code."""

    def __init__(self, status: int, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail

    def payload(self) -> dict[str, Any]:
        return {"error": self.message, "detail": self.detail}


def bad_request(message: str, detail: Any = None) -> ServingError:
    """The request is well-formed but the model cannot do what it asks (400)."""
    return ServingError(400, message, detail)


def invalid(message: str, detail: Any = None) -> ServingError:
    """A parameter is out of range or malformed (422)."""
    return ServingError(422, message, detail)
