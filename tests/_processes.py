"""Run a multi-process command (torchrun) so that a timeout kills every process it started."""

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
