"""The collector's benchmark: ingest figures beside the raw SQLite limit (`make bench`)."""
