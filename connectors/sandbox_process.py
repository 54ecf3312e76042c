"""What every sandbox process of the national systems shares when NIXA's demo or tests start it."""

from __future__ import annotations

import ctypes
import signal
import sys


def die_with_parent() -> None:
    """`preexec_fn` for a sandbox: on Linux it gets SIGTERM when the process that started it
    dies, even without running its clean-up (a killed test run, a demo stopped by a signal)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
