"""Executors: where a run's job runs, registered by name (``repro run --executor NAME``).

``local``: one subprocess a run, several at once (``--jobs``), the cores shared among them.
``debug``: in this process, one at a time, when its result is asked (tests, debugging).
A factory takes the folder for the jobs' files and returns a submitit executor.
"""
from __future__ import annotations

import os
from pathlib import Path

import submitit

from .registry import EXECUTORS

IN_PROCESS = ("debug",)  # executors that run the job inside this process


@EXECUTORS.register("local")
def local_executor(folder: Path) -> submitit.Executor:
    executor = submitit.LocalExecutor(folder=folder)
    executor.update_parameters(timeout_min=7 * 24 * 60)
    return executor


@EXECUTORS.register("debug")
def debug_executor(folder: Path) -> submitit.Executor:
    return submitit.DebugExecutor(folder=folder)


def default_jobs() -> int:
    """Runs at once on the local executor: one a core. A small run uses one core better than two
    runs share two (measured on 2 cores: 1.4x the throughput of one run on 2 threads)."""
    return max(1, os.cpu_count() or 1)
