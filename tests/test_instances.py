"""Several instances on one machine: each gunicorn keeps to its own control socket, or none."""

from gunicorn.ctl.client import ControlClient
from server import Server

CONTROL_LINE = "Control socket listening at"


def test_instances_on_one_machine_share_no_control_socket(tmp_path):
    env = {"WORKERS": "1", "PATTERN_MINER": "off", "LOG_LEVEL": "info"}
    with Server(tmp_path, tmp_path / "a.db", env=env) as plain:
        assert plain.worker_pids()
    assert CONTROL_LINE not in plain.log_path.read_text()  # off by default
    sockets = [tmp_path / "a.ctl", tmp_path / "b.ctl"]
    a = Server(tmp_path, tmp_path / "a.db", env={**env, "CONTROL_SOCKET": str(sockets[0])})
    b = Server(tmp_path, tmp_path / "b.db", env={**env, "CONTROL_SOCKET": str(sockets[1])})
    with a, b:
        for server, path in ((a, sockets[0]), (b, sockets[1])):
            with ControlClient(str(path), timeout=10) as control:
                listeners = control.send_command("show listeners")["listeners"]
                workers = control.send_command("show workers")["workers"]
            assert [item["address"] for item in listeners] == [f"http://127.0.0.1:{server.port}"]
            assert sorted(item["pid"] for item in workers) == sorted(server.worker_pids())
        b.stop()
        assert a.process.poll() is None and sockets[0].exists() and not sockets[1].exists()
