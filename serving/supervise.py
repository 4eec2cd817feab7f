"""Process supervision helpers for the service's workers.

``bentoml serve`` is a circus arbiter (the main process) that starts one worker process per
service. When the arbiter is killed with SIGKILL it cannot stop its workers: they are
re-parented, keep the listening socket they inherited and hold the port, so the next
``make serve`` fails. :func:`die_with_parent` asks the Linux kernel to send the worker
SIGTERM when its parent dies, which uvicorn handles as a normal (draining) shutdown.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys

log = logging.getLogger("bentoml.ganzoo")

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Have this process receive ``sig`` when its parent process dies (Linux; a no-op elsewhere).

    Call it first thing in every service's ``__init__`` (which runs in the worker). Returns
    whether the kernel took the request. If the parent died before the call, the signal is
    sent at once, as the kernel would have.
    """
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(ctypes.get_errno()))
            return False
    except (OSError, AttributeError) as e:  # no libc prctl (unusual libc): stay as we are
        log.warning("prctl(PR_SET_PDEATHSIG) unavailable: %s", e)
        return False
    if os.getppid() != parent:  # the parent died between getppid() and prctl(): too late to be told
        os.kill(os.getpid(), sig)
    return True
