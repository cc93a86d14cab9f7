"""``repro export``: a finished run's binary model -> a packed file, and back to a runnable model.

File (torch.save): ``{"format", "config", "state", "packed_units", "source"}``; ``state`` is the
packed model's state_dict: 1-bit weights as int64 words, per-channel scales and folded-BN
thresholds for each binary unit, float32 for the real layers (first and last, skips, joins).
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from sqlalchemy import select

from repro_kernels.packed import pack_model

from . import db as dbm
from .errors import ReproError
from .paths import CONFIG_FILE, FINAL_MODEL

FORMAT = "repro-packed-v1"


def find_run(paper: str, table: str, row: str, profile: str, seed: int, db_url: str | None) -> dbm.RunRecord:
    with dbm.session(db_url) as db:
        run = db.scalars(select(dbm.RunRecord).where(
            dbm.RunRecord.paper_id == paper, dbm.RunRecord.table_id == table, dbm.RunRecord.row_id == row,
            dbm.RunRecord.profile == profile, dbm.RunRecord.seed == seed, dbm.RunRecord.status == "finished",
        ).order_by(dbm.RunRecord.finished_at.desc())).first()
    if run is None:
        raise ReproError(f"no finished run of {paper} table {table} row '{row}' (profile {profile}, seed {seed}) "
                         f"in the database: run it first with 'repro run --paper {paper} --table {table} --rows {row} --profile {profile}'")
    if not run.run_dir or not (Path(run.run_dir) / FINAL_MODEL).exists():
        raise ReproError(f"run {run.hash} has no {FINAL_MODEL} in its run folder '{run.run_dir}'")
    return run


def build(config: dict) -> torch.nn.Module:
    """The row's model in eval mode, with its hard quantizers: training ends binary (a progressive
    recipe's smooth signs reach lambda = inf), so the stored weights are the binary network's."""
    from .plugins import discover
    from .tasks import get_task

    discover()  # registers the plugins' blocks
    return get_task(config["task"]).build_model(config).eval()


def load_trained(run: dbm.RunRecord) -> tuple[dict, torch.nn.Module]:
    folder = Path(run.run_dir)
    config = json.loads((folder / CONFIG_FILE).read_text())
    model = build(config)
    model.load_state_dict(torch.load(folder / FINAL_MODEL, weights_only=True, map_location="cpu"))
    return config, model


def export(run: dbm.RunRecord, out: Path) -> dict:
    config, model = load_trained(run)
    packed = copy.deepcopy(model)
    count = pack_model(packed)
    if count == 0:
        raise ReproError(f"row '{run.row_id}' has no binary conv unit to pack (a real-valued network?)")
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": FORMAT, "config": config, "state": packed.state_dict(), "packed_units": count,
                "source": {"paper": run.paper_id, "table": run.table_id, "row": run.row_id, "profile": run.profile,
                           "seed": run.seed, "hash": run.hash}}, out)
    return {"path": str(out), "packed_units": count, "packed_bytes": out.stat().st_size,
            "float_bytes": (Path(run.run_dir) / FINAL_MODEL).stat().st_size}


def load_packed(path: Path) -> tuple[dict, torch.nn.Module]:
    """A packed file -> (config, model running on the kernels)."""
    try:
        blob = torch.load(path, weights_only=True)
    except FileNotFoundError:
        raise ReproError(f"packed model '{path}' not found") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ReproError(f"'{path}' is not a packed model file ({FORMAT})")
    model = build(blob["config"])
    pack_model(model)
    model.load_state_dict(blob["state"])
    return blob["config"], model
