"""torchrun for `stylevid train --gpus N`: as `python -m torch.distributed.run`, quiet when a signal stops it.

torchrun's agent turns the SIGINT of a terminal's Ctrl-C (or a SIGTERM) into an exception, passes the
signal on to the training processes, waits for them (they finish the step and save a snapshot) and
raises the exception with a traceback of its own. The run was stopped as asked, and rank 0 has said
how to resume: the traceback only hides that. Here it is an exit status, 128 + the signal's number.
"""

from __future__ import annotations

import sys

from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.run import main as torchrun


def main() -> int:
    """torchrun with this process's arguments; its exit status."""
    try:
        torchrun()
    except SignalException as stopped:
        return 128 + stopped.sigval
    return 0


if __name__ == "__main__":
    sys.exit(main())
