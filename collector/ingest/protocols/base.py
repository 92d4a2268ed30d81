"""What every wire protocol is made of, and what it is handed: no web framework in sight."""

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ...keys import Caller


@dataclass(frozen=True)
class Route:
    """A URL rule a protocol answers, with its endpoint name and methods.

    An ingest route's requests become batches (``Protocol.batch``); any other route
    (a probe such as Elasticsearch's ``GET /``) is answered by ``Protocol.serve``.
    """

    rule: str
    endpoint: str
    methods: tuple = ("POST",)
    ingest: bool = True


@dataclass
class IngestRequest:
    """What a protocol sees of an HTTP request."""

    content_type: str  # the media type, lower case, without parameters (empty when none)
    content_encoding: str | None
    args: Mapping  # query parameters: a multi-dict (``getlist``)
    headers: Mapping  # case-insensitive
    caller: Caller
    read_body: Callable[[], bytes]  # reads the whole body, within the configured time
    max_body_bytes: int  # the bound on a decompressed body
    view_args: dict = field(default_factory=dict)  # the values of the route's variable parts
    endpoint: str = ""  # the Route's endpoint


@dataclass
class Answer:
    """What a protocol answers: a status, a JSON-ready body (or bytes), headers."""

    status: int
    body: object = None
    headers: dict = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass
class Failure:
    """An error as the web layer classified it, for a protocol to shape."""

    status: int
    code: str  # the stable machine-readable code, e.g. storage_busy
    message: str
    details: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)  # Retry-After, WWW-Authenticate, Allow
    request_type: str = ""  # the request's media type, for protocols that answer in kind

    def to_dict(self):
        """The collector's own error shape: ``{"error": code, "message": text, ...details}``."""
        return {"error": self.code, "message": self.message, **self.details}


# How a request may present its API key in the Authorization header (X-API-Key always
# works): "Bearer <key>", "ApiKey <key>", "Splunk <key>", or Basic with the key as password.
KEY_SCHEMES = ("bearer", "apikey")
SHIPPER_KEY_SCHEMES = ("bearer", "apikey", "basic", "splunk")


class Protocol(ABC):
    """A wire protocol: its routes, how a request becomes a Batch, its answers and errors.

    ``name`` names its blueprint (endpoints are ``<name>.<endpoint>``). ``key_schemes``
    are the Authorization schemes that carry an API key on its routes: a shipper that
    can send nothing but Basic credentials (rsyslog, python-logging-loki) sends the key
    as the password.
    """

    name = ""
    routes = ()
    key_schemes = SHIPPER_KEY_SCHEMES

    @abstractmethod
    def batch(self, request):
        """The Batch of an IngestRequest, its decoder bound; raises domain errors."""

    @abstractmethod
    def answer(self, request, batch, result):
        """The Answer to a stored batch (an IngestResult)."""

    @abstractmethod
    def error(self, failure):
        """The Answer to a Failure, in the protocol's own error shape."""

    def format_name(self, request):
        """The body format for the metrics' ``format`` label."""
        return self.name

    def serve(self, endpoint, request):
        """The Answer of a route that is not an ingest route (``Route.ingest`` false)."""
        raise NotImplementedError(f"{self.name} has no route {endpoint!r} to serve")

    @abstractmethod
    def openapi(self, config):
        """The OpenAPI operations of the routes, {endpoint: {method: operation}}, and the
        component schemas they name, {name: marshmallow schema}."""


def reasons(problems):
    """A record's validation errors ({field: [reason, ...]}) as one line of text."""
    return "; ".join(f"{name}: {' '.join(why) if isinstance(why, list) else why}"
                     for name, why in problems.items())
