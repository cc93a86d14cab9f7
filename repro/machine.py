"""The machine a figure was measured on, named beside it."""
from __future__ import annotations

import os
import platform
from functools import cache


@cache
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what the platform module knows."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
