"""Subprocess helpers: torchrun with a group-wide timeout, and Python with packages hidden."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping, Sequence

import pytest


def run_process_group(command: Sequence[str], *, env: Mapping[str, str],
                      timeout: float) -> subprocess.CompletedProcess:
    """Run ``command`` in its own session; on timeout kill the whole group and fail the test.

    ``subprocess.run(timeout=...)`` kills only the direct child, which would leave torchrun's
    worker processes running after a hung distributed test.
    """
    process = subprocess.Popen(command, env=dict(env), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"{' '.join(command[:6])} … timed out after {timeout} s:\n{stderr[-4000:]}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def hide_packages_source(blocked: set[str]) -> str:
    """Return Python source that makes the ``blocked`` top-level packages look uninstalled.

    Every finder on ``sys.meta_path`` is wrapped so that it reports them as absent: ``import
    torch`` then raises ModuleNotFoundError (an ImportError), and probes such as
    ``importlib.util.find_spec("torch")`` return None, as they do where torch is not installed.
    Run it first in a fresh interpreter (``python -c``), before anything imports them.
    """
    return f"""
import sys

BLOCKED = {sorted(blocked)!r}


class HideBlocked:
    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            return None
        find = getattr(self.finder, "find_spec", None)
        return None if find is None else find(name, path, target)

    def __getattr__(self, attribute):
        return getattr(self.finder, attribute)


sys.meta_path[:] = [HideBlocked(finder) for finder in sys.meta_path]
"""
