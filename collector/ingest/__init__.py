"""Ingest: the one write path (``writer``), the record schema, and the wire protocols."""
