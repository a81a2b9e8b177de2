"""Pool workers that die with the process that started them.

A pool worker blocked on its task queue waits forever once its parent is gone (kill -9 of a build leaves them
behind). Every pool passes `die_with_parent` as its initializer: on Linux the kernel kills the worker when the
parent dies (`prctl(PR_SET_PDEATHSIG, SIGKILL)`); elsewhere a daemon thread watches the parent pid.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from typing import Any

_PR_SET_PDEATHSIG = 1
_WATCH_INTERVAL_S = 1.0


def _set_parent_death_signal() -> bool:
    """Ask the kernel for SIGKILL when the parent dies; False where prctl is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(_WATCH_INTERVAL_S)
    os._exit(1)


def die_with_parent(parent_pid: int) -> None:
    """Pool initializer: end this process as soon as `parent_pid` (the pool's owner) is gone."""
    if not _set_parent_death_signal():
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True, name="parent-watch").start()
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)


def pool_initializer() -> dict[str, Any]:
    """Keyword arguments for ProcessPoolExecutor: workers that die with this process."""
    return {"initializer": die_with_parent, "initargs": (os.getpid(),)}


def stop_with_launcher() -> None:
    """A rank started by a launcher (torchrun, accelerate, deepspeed) ends when the launcher does. The launcher
    puts each rank in a session of its own, so neither a kill -9 of the launcher nor one of its process group
    reaches the ranks, which would train on unwatched. A script run by hand keeps surviving its shell (nohup).
    Light on imports so that launch scripts call it before torch loads (seconds in which a kill would be missed)."""
    if "LOCAL_RANK" in os.environ:
        die_with_parent(os.getppid())
