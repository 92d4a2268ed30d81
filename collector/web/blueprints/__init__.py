"""The HTTP endpoints, one blueprint per concern; the ingest protocols' are made per protocol."""
