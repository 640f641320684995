"""Child processes that die with their parent.

A DataLoader worker whose main process is killed with SIGKILL does not notice: it stays blocked
writing its last tiles into the queue's pipe (nobody reads it any more), reparented to init, holding
its slide handle and buffers (~190 MB each) forever. :func:`die_with_parent` (run first thing in
the child, e.g. as a DataLoader ``worker_init_fn`` through :class:`DieWithParent`) makes the kernel
send the child SIGKILL when its parent dies (Linux ``prctl(PR_SET_PDEATHSIG)``); elsewhere a daemon
thread polls the parent's pid. Either way the child first checks that its parent is still the one
recorded before the fork, because a parent that died between fork and prctl sends no signal.

Caveat (Linux): the death signal follows the *thread* that forked the child, so start such children
from a thread that lives as long as they are needed (the DataLoader does: its iterator's thread).
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _set_parent_death_signal() -> bool:
    """Ask the kernel for SIGKILL when the parent dies; False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid: int, interval: float) -> None:
    while os.getppid() == parent_pid:
        time.sleep(interval)
    os._exit(1)


def die_with_parent(parent_pid: int, poll_interval: float = 1.0) -> None:
    """Make the calling (child) process exit as soon as process ``parent_pid`` is gone.

    ``parent_pid`` is the parent's pid recorded *before* the fork (``os.getpid()`` in the parent)."""
    kernel_watches = _set_parent_death_signal()
    if os.getppid() != parent_pid:  # the parent died before the death signal was armed
        os._exit(1)
    if not kernel_watches:
        threading.Thread(target=_watch_parent, args=(parent_pid, poll_interval), daemon=True,
                         name="die-with-parent").start()


class DieWithParent:
    """Picklable ``worker_init_fn`` for ``torch.utils.data.DataLoader`` (or any ``initializer``
    taking optional arguments) that calls :func:`die_with_parent` for the process that made it."""

    def __init__(self, parent_pid: int | None = None):
        self.parent_pid = os.getpid() if parent_pid is None else parent_pid

    def __call__(self, *_args) -> None:
        die_with_parent(self.parent_pid)


__all__ = ["DieWithParent", "die_with_parent"]
