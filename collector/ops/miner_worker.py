"""The pattern miner as gunicorn runs it: the one app of its dirty worker (gunicorn.conf.py).

gunicorn's dirty arbiter starts that process with the server, starts it again if it dies,
and stops it with the server; its miner thread runs at idle priority, and only the holder
of the miner lock mines (see ``ops.miner``).
"""

import os

from gunicorn.dirty.app import DirtyApp

from config import Config

from .. import storage
from .miner import MinerThread, end_with_parent, name_process

PROCESS_NAME = "pattern-miner"  # in ps and /proc/<pid>/comm; its arbiter's is below
ARBITER_NAME = "miner-arbiter"


class MinerApp(DirtyApp):
    """Runs the MinerThread from the worker's start to its end; it takes no requests."""

    def init(self):
        """Start mining on the store the environment names."""
        name_process(PROCESS_NAME)
        # A stop that reaches this process while it starts is lost (gunicorn sets its
        # handlers after the fork): the arbiter's end, then, still ends it.
        end_with_parent()
        if os.getppid() == 1:  # the arbiter is gone already
            raise SystemExit("the miner's arbiter has exited")
        settings = Config().as_dict()
        self.thread = MinerThread(storage.open_store(settings), settings["PATTERN_SIMILARITY"])
        self.thread.start()

    def close(self):
        """Stop after the batch under way."""
        self.thread.stop()
