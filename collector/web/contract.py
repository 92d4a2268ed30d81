"""A view's contract beside the view: its query schema, which loads the request's parameters,
and its OpenAPI operations, which the document at /openapi.json is built from."""

import functools
from dataclasses import dataclass, field

from flask import request

from ..read.params import load_params


@dataclass
class Contract:
    """What a view takes and answers: OpenAPI operations by method, and its query schema."""

    operations: dict
    query: object = None  # a marshmallow schema instance for the query string
    components: dict = field(default_factory=dict)  # schemas the operations name


def contract(query=None, components=None, **operations):
    """Declare a view's contract; with ``query`` the view gets the loaded parameters as ``params``.

    ``operations`` are OpenAPI operations by lower-case method (``get=...``);
    their ``parameters`` gain the query schema's, and the document takes the
    summary and description from the view's docstring.
    """

    def decorate(view):
        if query is None:
            wrapped = view
        else:
            @functools.wraps(view)
            def wrapped(*args, **kwargs):
                return view(*args, params=load_params(query, request.args), **kwargs)

        wrapped.contract = Contract(operations, query, components or {})
        return wrapped

    return decorate
