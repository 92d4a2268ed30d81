"""The collector's own logs as JSON lines: one object per line, fields a machine can filter on."""

import datetime
import logging

import orjson


class JsonFormatter(logging.Formatter):
    """A log record as one JSON object: time, level, logger, message, its ``fields``, exception."""

    def format(self, record):
        line = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        # default=str: a field the caller passed that JSON has no type for still logs.
        return orjson.dumps(line, default=str).decode()
