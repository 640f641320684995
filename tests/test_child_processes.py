"""Child processes die with their parent: the parent dead before the child armed its watch, and the
polling watch used where the kernel's parent-death signal is not available. (The Linux prctl path
with real DataLoader readers is tested in test_slide_inference.py.)"""
from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from nucleus_seg.child_processes import DieWithParent


def _arm_then_exit_cleanly(parent_pid):
    DieWithParent(parent_pid)(0)  # called like a DataLoader worker_init_fn
    os._exit(0)


def test_a_child_whose_recorded_parent_is_already_gone_exits_at_once():
    fork = multiprocessing.get_context("fork")
    gone = fork.Process(target=_arm_then_exit_cleanly, args=(os.getpid() + 10_000_000,))
    gone.start()
    gone.join(30)
    assert gone.exitcode == 1
    alive = fork.Process(target=_arm_then_exit_cleanly, args=(os.getpid(),))
    alive.start()
    alive.join(30)
    assert alive.exitcode == 0


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_without_the_kernel_signal_a_polling_child_exits_when_its_parent_is_killed():
    # the parent forks a child that watches it by polling, prints the child's pid, then dies by SIGKILL
    code = textwrap.dedent("""
        import os, signal, sys, time
        import nucleus_seg.child_processes as cp
        cp._set_parent_death_signal = lambda: False
        parent = os.getpid()
        child = os.fork()
        if child == 0:
            devnull = os.open(os.devnull, os.O_WRONLY)  # let the test's pipe close with the parent
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            cp.die_with_parent(parent, poll_interval=0.05)
            time.sleep(600)
            os._exit(0)
        print(child, flush=True)
        os.kill(parent, signal.SIGKILL)
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == -9
    child = int(run.stdout.split()[0])
    deadline = time.monotonic() + 5.0
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    survived = not _gone(child)
    if survived:
        os.kill(child, 9)
    assert not survived
