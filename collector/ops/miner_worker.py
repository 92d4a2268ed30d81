"""The pattern miner as gunicorn runs it: the one app of its dirty worker (gunicorn.conf.py).

gunicorn's dirty arbiter starts that process with the server, starts it again if it dies,
and stops it with the server; its miner thread runs at idle priority, and only the holder
of the miner lock mines (see ``ops.miner``).
"""

from gunicorn.dirty.app import DirtyApp

from config import Config

from .. import storage
from .miner import MinerThread, name_process

PROCESS_NAME = "pattern-miner"  # in ps and /proc/<pid>/comm; its arbiter's is below
ARBITER_NAME = "miner-arbiter"


class MinerApp(DirtyApp):
    """Runs the MinerThread from the worker's start to its end; it takes no requests."""

    def init(self):
        """Start mining on the store the environment names."""
        name_process(PROCESS_NAME)
        settings = Config().as_dict()
        self.thread = MinerThread(storage.open_store(settings), settings["PATTERN_SIMILARITY"])
        self.thread.start()

    def close(self):
        """Stop after the batch under way."""
        self.thread.stop()
