"""Where generated state goes: ``.repro/`` under REPRO_HOME (default: the working directory)."""
from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("REPRO_HOME", ".")).resolve() / ".repro"


def cache_dir() -> Path:
    return home() / "cache"


def run_dir(run_hash: str) -> Path:
    return home() / "runs" / run_hash


def jobs_dir() -> Path:
    return home() / "jobs"
