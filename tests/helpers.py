"""Plain helpers shared by the tests: records, keys, HTTP to a running server, threads."""

import http.client
import threading


def record(**fields):
    """A valid record, with ``fields`` replacing or adding to the defaults."""
    return {"service": "billing", "severity": "INFO", "message": "invoice 42 sent", **fields}


def create_key(database_path, name, scopes, services=None, rate_limit=None):
    """Create an API key in the database at ``database_path`` (migrated first; on the backend
    under test, as tests/server.py's servers have it); the key."""
    from conftest import ServerDatabases

    from collector import create_app, keys

    store = create_app({"DATABASE_URL": ServerDatabases.url(database_path)}).extensions["store"]
    with store.session():
        store.migrate()
        _api_key, key = keys.create_key(store, name, scopes, services, rate_limit)
    store.close()
    return key


def request(port, method, path, body=None, headers=None, connection=None, timeout=30):
    """(status, body bytes) of one request to the server on ``port``.

    On ``connection`` when given (kept open for the next), else on a new one.
    """
    return exchange(port, method, path, body, headers, connection, timeout)[:2]


def exchange(port, method, path, body=None, headers=None, connection=None, timeout=30):
    """(status, body bytes, response headers) of one request, as ``request`` makes it."""
    conn = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read(), response.headers
    finally:
        if connection is None:
            conn.close()


def run_threads(target, args_list, timeout=None):
    """Run ``target`` once per args tuple of ``args_list``, in threads, and wait for them all."""
    threads = [threading.Thread(target=target, args=args) for args in args_list]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return threads
