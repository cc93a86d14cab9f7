"""Executors: where a run's job runs, registered by name (``repro run --executor NAME``).

``local``: one subprocess a run, several at once (``--jobs``), the cores shared among them.
``debug``: in this process, one at a time, when its result is asked (tests, debugging).
``slurm``: submitit's SLURM executor; a wave of runs is one job array, runs that wait for
others (distillation students) a second array with an ``afterok`` dependency on them; the
command submits and returns (``--wait`` follows the jobs). Its parameters come from a cluster
profile (``jobs/clusters/<name>.yaml``) and the command line.

A registered executor is a class with ``in_process`` and ``arrays`` and
``make(folder, options) -> submitit.Executor``; a plugin may register its own.
"""
from __future__ import annotations

import os
import shutil
import signal
import threading
from pathlib import Path
from typing import Any

import submitit
import yaml

from .errors import ReproError
from .registry import EXECUTORS


class Executor:
    in_process = False  # runs the job inside this process when its result is asked
    arrays = False      # submits each wave as one job array and returns (a cluster)

    @classmethod
    def check(cls, options: dict[str, Any]) -> None:
        """Raise ReproError for what would stop ``make`` (checked before anything is written)."""

    @classmethod
    def make(cls, folder: Path, options: dict[str, Any]) -> submitit.Executor:
        raise NotImplementedError


class _ControllerIgnoresCtrlC(submitit.LocalExecutor):
    """submitit's local controller is a child of this process, in the terminal's process group:
    Ctrl-C reached it too and it died printing a traceback. Started with SIGINT ignored, it lives
    on; the CLI stops the jobs itself (SIGTERM to the controller, passed on) and each job installs
    its own SIGINT handler."""

    def _internal_process_submissions(self, delayed_submissions):
        if threading.current_thread() is not threading.main_thread():
            return super()._internal_process_submissions(delayed_submissions)
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited through fork and exec
        try:
            return super()._internal_process_submissions(delayed_submissions)
        finally:
            signal.signal(signal.SIGINT, previous)


@EXECUTORS.register("local")
class LocalExecutor(Executor):
    @classmethod
    def make(cls, folder: Path, options: dict[str, Any]) -> submitit.Executor:
        executor = _ControllerIgnoresCtrlC(folder=folder)
        executor.update_parameters(timeout_min=7 * 24 * 60)
        return executor


@EXECUTORS.register("debug")
class DebugExecutor(Executor):
    in_process = True

    @classmethod
    def make(cls, folder: Path, options: dict[str, Any]) -> submitit.Executor:
        return submitit.DebugExecutor(folder=folder)


# A cluster profile's fields and the submitit SlurmExecutor parameters they set.
CLUSTER_FIELDS = {
    "partition": "partition", "account": "account", "qos": "qos", "gpus": "gpus_per_node",
    "cpus": "cpus_per_task", "mem": "mem", "time": "time", "array_parallelism": "array_parallelism",
    "setup": "setup", "signal_delay_s": "signal_delay_s", "sbatch": "additional_parameters",
}
CLUSTERS_DIR = Path(__file__).resolve().parents[1] / "jobs" / "clusters"


@EXECUTORS.register("slurm")
class SlurmExecutor(Executor):
    arrays = True

    @classmethod
    def check(cls, options: dict[str, Any]) -> None:
        if shutil.which("sbatch") is None:
            raise ReproError("--executor slurm: 'sbatch' is not on PATH: run on a SLURM login node, or load the "
                             "SLURM module first (or use --executor local)")
        cluster_parameters(options)

    @classmethod
    def make(cls, folder: Path, options: dict[str, Any]) -> submitit.Executor:
        cls.check(options)
        parameters = cluster_parameters(options)
        executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=parameters.pop("max_requeues", 30))
        executor.update_parameters(**parameters)
        return executor


def load_cluster(name: str) -> dict[str, Any]:
    """The cluster profile ``jobs/clusters/<name>.yaml`` (or a path to a YAML file), checked."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else CLUSTERS_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in CLUSTERS_DIR.glob("*.yaml")) if CLUSTERS_DIR.is_dir() else []
        raise ReproError(f"unknown cluster profile '{name}': no {path}; choose from {', '.join(known) or '(none)'} "
                         f"or write one (see jobs/clusters/example.yaml)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise ReproError(f"malformed cluster profile {path}: {where}not valid YAML: fix the file") from None
    if not isinstance(data, dict):
        raise ReproError(f"malformed cluster profile {path}: expected a mapping of {', '.join(CLUSTER_FIELDS)}")
    unknown = set(data) - set(CLUSTER_FIELDS) - {"max_requeues"}
    if unknown:
        raise ReproError(f"malformed cluster profile {path}: unknown field(s) {', '.join(sorted(unknown))}: "
                         f"use {', '.join(CLUSTER_FIELDS)}, max_requeues")
    for key, kind in (("setup", list), ("sbatch", dict), ("gpus", int), ("cpus", int), ("array_parallelism", int),
                      ("max_requeues", int), ("signal_delay_s", int)):
        if key in data and (not isinstance(data[key], kind) or isinstance(data[key], bool)):
            raise ReproError(f"malformed cluster profile {path}: {key}: expected {kind.__name__}, got {data[key]!r}")
    return data


def minutes(value: Any) -> int:
    """A SLURM time (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``) or a
    number of minutes -> whole minutes, rounded up."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    try:
        days, rest = (int(text.split("-")[0]), text.split("-", 1)[1]) if "-" in text else (0, text)
        parts = [int(p) for p in rest.split(":")]
        if len(parts) > 3 or min(parts) < 0:
            raise ValueError
        if "-" in text:  # D-HH[:MM[:SS]]
            hours, mins, secs = (parts + [0, 0])[:3]
        elif len(parts) == 3:  # HH:MM:SS
            hours, mins, secs = parts
        else:  # MM or MM:SS
            hours, mins, secs = 0, parts[0], parts[1] if len(parts) == 2 else 0
    except ValueError:
        raise ReproError(f"time '{value}': use minutes, HH:MM:SS or D-HH:MM:SS") from None
    return max(1, days * 1440 + hours * 60 + mins + (secs + 59) // 60)


def cluster_parameters(options: dict[str, Any]) -> dict[str, Any]:
    """SlurmExecutor parameters from the cluster profile (``options["cluster"]``) with the command
    line's ``partition``, ``time``, ``gpus``, ``array_parallelism`` over it."""
    profile = load_cluster(options["cluster"]) if options.get("cluster") else {}
    merged = {**profile, **{k: v for k, v in options.items() if k != "cluster" and v is not None}}
    parameters: dict[str, Any] = {"job_name": "repro", "signal_delay_s": 120}
    for key, value in merged.items():
        if key == "max_requeues":
            parameters[key] = value
        elif key in CLUSTER_FIELDS:
            parameters[CLUSTER_FIELDS[key]] = minutes(value) if key == "time" else value
    parameters.setdefault("time", 60)
    return parameters


def default_jobs() -> int:
    """Runs at once on the local executor: one a core. A small run uses one core better than two
    runs share two (measured on 2 cores: 1.4x the throughput of one run on 2 threads)."""
    return max(1, os.cpu_count() or 1)
