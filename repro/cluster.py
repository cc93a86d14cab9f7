"""The cluster's view of jobs: SLURM states through squeue (live) and sacct (finished), and the
liveness of local job processes. A run whose job is gone without finishing it is interrupted."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess

# SLURM's states, as the user reads them.
STATES = {
    "PENDING": "pending", "CONFIGURING": "pending", "REQUEUED": "requeued", "REQUEUE_HOLD": "requeued",
    "REQUEUE_FED": "requeued", "RUNNING": "running", "COMPLETING": "running", "SUSPENDED": "suspended",
    "PREEMPTED": "preempted", "COMPLETED": "completed", "FAILED": "failed", "NODE_FAIL": "failed",
    "OUT_OF_MEMORY": "failed", "BOOT_FAIL": "failed", "DEADLINE": "timeout", "TIMEOUT": "timeout",
    "CANCELLED": "cancelled", "REVOKED": "cancelled",
}
LIVE = ("pending", "running", "requeued", "suspended")


def _run(command: list[str]) -> str | None:
    if shutil.which(command[0]) is None:
        return None
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def slurm_states(job_ids: list[str]) -> dict[str, str]:
    """State of each SLURM job (``123`` or array task ``123_4``): squeue for queued and running
    jobs, sacct for the others (where accounting runs); a job neither knows is absent."""
    if not job_ids:
        return {}
    bases = sorted({j.split("_")[0] for j in job_ids})
    states: dict[str, str] = {}
    out = _run(["squeue", "-h", "-r", "-o", "%i|%T", "-j", ",".join(bases)])
    for line in (out or "").splitlines():
        job, _, state = line.strip().partition("|")
        states[job] = STATES.get(state.split()[0] if state else "", state.lower())
    missing = [j for j in job_ids if j not in states]
    if missing:
        out = _run(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(sorted({j.split("_")[0] for j in missing}))])
        for line in (out or "").splitlines():
            job, _, state = line.strip().partition("|")
            if job in missing:
                states[job] = STATES.get(state.split()[0] if state else "", state.lower())
    return {j: states[j] for j in job_ids if j in states}


def local_alive(job_id: str | None, host: str | None) -> bool:
    """Is a local job's process still there (on this host)?"""
    if host != socket.gethostname() or not (job_id or "").isdigit() or int(job_id) == os.getpid():
        return False
    try:
        os.kill(int(job_id), 0)
    except OSError:
        return False
    return True
