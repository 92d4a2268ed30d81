"""The wire protocols the collector ingests, one module each: routes, decoder, answer, errors.

A protocol reads what it needs of a request (an IngestRequest), turns it into a
Batch for the one Writer, and shapes the outcome, and every error, the way its
clients expect (see ``base.Protocol``). The web layer serves each entry of
``PROTOCOLS`` as a blueprint of its own behind the ``ingest`` scope: adding a
protocol is adding a module and naming it here. ``mapping`` reads documents of
other shapes (field names, levels, times) for the protocols that take them.
"""

from . import elasticsearch, loki, native, otlp, splunk

PROTOCOLS = (native.PROTOCOL, otlp.PROTOCOL, loki.PROTOCOL, elasticsearch.PROTOCOL,
             splunk.PROTOCOL)
