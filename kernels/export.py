"""``repro export``: a finished run's binary model -> a packed file, and back to a runnable model.

File (torch.save): ``{"format", "config", "state", "packed_units", "source"}``; ``state`` is the
packed model's state_dict: 1-bit weights as int64 words, per-channel scales and folded-BN
thresholds for each binary unit, float32 for the real layers (first and last, skips, joins).
"""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import torch
from sqlalchemy import select

from repro import db as dbm
from repro.errors import ReproError
from repro.nn.quantizers import set_quantizer_lambda

from .packed import pack_model

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
    if not run.run_dir or not (Path(run.run_dir) / "model.pt").exists():
        raise ReproError(f"run {run.hash} has no model.pt in its run folder '{run.run_dir}'")
    return run


def build(config: dict) -> torch.nn.Module:
    """The row's model, as trained, in eval mode with every smooth sign at lambda = inf
    (training ends there: the stored weights are those of the binary network)."""
    from repro.plugins import discover
    from repro.tasks import get_task

    discover()  # registers the plugins' blocks
    model = get_task(config["task"]).build_model(config)
    set_quantizer_lambda(model, math.inf)
    return model.eval()


def load_trained(run: dbm.RunRecord) -> tuple[dict, torch.nn.Module]:
    folder = Path(run.run_dir)
    config = json.loads((folder / "config.json").read_text())
    model = build(config)
    model.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
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
            "float_bytes": (Path(run.run_dir) / "model.pt").stat().st_size}


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
