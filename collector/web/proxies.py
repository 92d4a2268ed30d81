"""Requests through a reverse proxy: its X-Forwarded-For and -Proto, believed from it alone.

A client that reaches the collector directly could send those headers too, to pass for
another address; so they are read only when the peer is one of TRUSTED_PROXIES.
"""

import ipaddress

from werkzeug.middleware.proxy_fix import ProxyFix


class TrustedProxies:
    """WSGI middleware: werkzeug's ProxyFix (one proxy hop) for requests from ``networks``."""

    def __init__(self, wsgi_app, networks):
        self.direct = wsgi_app
        self.proxied = ProxyFix(wsgi_app, x_for=1, x_proto=1)
        self.networks = networks

    def trusts(self, peer):
        """Whether the peer address ``peer`` is one of the trusted proxies."""
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:  # a Unix socket, or no peer at all
            return False
        return any(address in network for network in self.networks)

    def __call__(self, environ, start_response):
        trusted = self.trusts(environ.get("REMOTE_ADDR", ""))
        return (self.proxied if trusted else self.direct)(environ, start_response)


def init_app(app):
    """Honour the forwarded headers of TRUSTED_PROXIES, when there are any."""
    if app.config["TRUSTED_PROXIES"]:
        app.wsgi_app = TrustedProxies(app.wsgi_app, app.config["TRUSTED_PROXIES"])
