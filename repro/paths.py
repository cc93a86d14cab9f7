"""Where generated state goes: ``.repro/`` under REPRO_HOME (default: the working directory),
and the files of a run's folder."""
from __future__ import annotations

import os
from pathlib import Path

CONFIG_FILE = "config.json"      # the run's resolved config
CHECKPOINT = "checkpoint.pt"     # the last epoch's state, for resuming
FINAL_MODEL = "model.pt"         # the trained model's state_dict


def home() -> Path:
    return Path(os.environ.get("REPRO_HOME", ".")).resolve() / ".repro"


def cache_dir() -> Path:
    return home() / "cache"


def run_dir(run_hash: str) -> Path:
    return home() / "runs" / run_hash


def jobs_dir() -> Path:
    return home() / "jobs"
