"""Plain helpers shared by the tests."""


def record(**fields):
    """A valid record, with ``fields`` replacing or adding to the defaults."""
    return {"service": "billing", "severity": "INFO", "message": "invoice 42 sent", **fields}
