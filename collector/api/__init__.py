"""HTTP endpoints, one blueprint per concern."""

from flask import request

from ..errors import APIError


def reject_unknown_params(*allowed):
    """Answer 400 naming the first query parameter not in ``allowed``."""
    for name in request.args:
        if name not in allowed:
            expected = ", ".join(allowed) or "none"
            raise APIError(
                400,
                "unknown_parameter",
                f"unknown query parameter {name!r}; expected: {expected}",
                parameter=name,
            )
