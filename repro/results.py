"""The results API: what the results database holds, as pandas DataFrames.

``repro compare``, ``repro kernels show`` and the dashboard read runs, metrics and kernel
benchmarks through these functions only (one SQL path), and take every verdict from
:mod:`repro.compare` (one verdict logic): a number the dashboard shows is the number
``repro compare --format json`` prints.

Reading never creates a database: :func:`exists` says whether there is one to read.
"""
from __future__ import annotations

import os
import statistics
from dataclasses import asdict
from typing import TYPE_CHECKING

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from . import db as dbm
from .profiles import PROFILES, get_profile

if TYPE_CHECKING:
    from .compare import TableComparison
    from .plugins import Paper

RUN_COLUMNS = ["id", "hash", "paper", "table", "row", "seed", "profile", "status", "host", "executor", "job_id", "array_id",
               "attempts", "created_at", "started_at", "finished_at", "duration_s", "error", "mlflow_run_id",
               "mlflow_experiment_id", "assumptions"]
STRUCTURE_MEASURES = ["params_m", "flops_g", "binary_macs_g", "size_float32_mb", "size_packed_mb"]
VERDICTS = ("holds", "fails", "inconclusive")


def exists(db_url: str | None = None) -> bool:
    """Whether there is a database to read: a server URL always counts (connecting tells the
    rest); an SQLite file must be there already."""
    try:
        url = make_url(dbm.database_url(db_url))
    except ArgumentError:  # opening it says what is wrong, in one line
        return True
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return True
    return os.path.exists(url.database)


# --- queries ----------------------------------------------------------------------------------

def _read(db_url: str | None, statement, columns: list[str]) -> pd.DataFrame:
    """The statement's rows as a frame; an empty frame where there is no database yet."""
    if not exists(db_url):
        return pd.DataFrame(columns=columns)
    with dbm.session(db_url) as db:
        rows = db.execute(statement).all()
    return pd.DataFrame([tuple(row) for row in rows], columns=columns)


def _run_filters(paper: str | None, table: str | None, profile: str | None, states) -> list:
    runs = dbm.RunRecord
    where = []
    if paper:
        where.append(runs.paper_id == paper)
    if table:
        where.append(runs.table_id == str(table))
    if profile:
        where.append(runs.profile == profile)
    if states:
        where.append(runs.status.in_(list(states)))
    return where


def runs(db_url: str | None = None, *, paper: str | None = None, table: str | None = None, profile: str | None = None,
         states=None) -> pd.DataFrame:
    """One row per run (``RUN_COLUMNS``), oldest first. ``array_id``: the SLURM array a job id
    ``1234_5`` belongs to (else empty)."""
    r = dbm.RunRecord
    statement = (select(r.id, r.hash, r.paper_id, r.table_id, r.row_id, r.seed, r.profile, r.status, r.host, r.executor,
                        r.job_id, r.attempts, r.created_at, r.started_at, r.finished_at, r.duration_s, r.error,
                        r.mlflow_run_id, r.mlflow_experiment_id, r.assumptions)
                 .where(*_run_filters(paper, table, profile, states)).order_by(r.id))
    frame = _read(db_url, statement, [c for c in RUN_COLUMNS if c != "array_id"])
    frame.insert(RUN_COLUMNS.index("array_id"), "array_id",
                 [job.split("_")[0] if isinstance(job, str) and "_" in job else "" for job in frame["job_id"]])
    frame["attempts"] = frame["attempts"].fillna(0).astype(int)
    return frame


def latest_table(db_url: str | None = None) -> tuple[str, str] | None:
    """(paper, table) of the run created last, or None."""
    r = dbm.RunRecord
    found = _read(db_url, select(r.paper_id, r.table_id).order_by(r.id.desc()).limit(1), ["paper", "table"])
    return (found["paper"][0], found["table"][0]) if len(found) else None


def final_metrics(db_url: str | None = None, *, paper: str | None = None, table: str | None = None,
                  profile: str | None = None, states=("finished",)) -> pd.DataFrame:
    """The final value of each metric of each run (``run_id``, ``name``, ``value``), one query."""
    m = dbm.MetricRecord
    statement = (select(m.run_pk, m.name, m.value).join(dbm.RunRecord, dbm.RunRecord.id == m.run_pk)
                 .where(m.step.is_(None), *_run_filters(paper, table, profile, states)).order_by(m.run_pk, m.id))
    return _read(db_url, statement, ["run_id", "name", "value"])


def curves(db_url: str | None, run_ids: list[int]) -> pd.DataFrame:
    """Per-epoch metrics of the given runs (``run_id``, ``step``, ``name``, ``value``), with each
    run's ``row``, ``seed`` and ``profile``."""
    m, r = dbm.MetricRecord, dbm.RunRecord
    columns = ["run_id", "row", "seed", "profile", "step", "name", "value"]
    if not run_ids:
        return pd.DataFrame(columns=columns)
    statement = (select(m.run_pk, r.row_id, r.seed, r.profile, m.step, m.name, m.value).join(r, r.id == m.run_pk)
                 .where(m.step.is_not(None), m.run_pk.in_([int(i) for i in run_ids])).order_by(m.run_pk, m.step))
    return _read(db_url, statement, columns)


def curve_band(curves_frame: pd.DataFrame) -> pd.DataFrame:
    """Per (row, step) of one metric's curves: ``mean``, ``std`` over seeds (sample; 0 for one
    seed), ``n``, and the band ``low`` = mean - std, ``high`` = mean + std."""
    grouped = curves_frame.groupby(["row", "step"], sort=True)["value"]
    band = grouped.agg(mean="mean", std="std", n="count").reset_index()
    band["std"] = band["std"].fillna(0.0)
    band["low"], band["high"] = band["mean"] - band["std"], band["mean"] + band["std"]
    return band


def run_counts(db_url: str | None = None) -> pd.DataFrame:
    """Runs by (paper, table, profile, status): ``count``."""
    r = dbm.RunRecord
    statement = select(r.paper_id, r.table_id, r.profile, r.status, func.count()).group_by(r.paper_id, r.table_id, r.profile,
                                                                                          r.status)
    return _read(db_url, statement, ["paper", "table", "profile", "status", "count"])


KERNEL_KEY = ["kind", "name", "baseline", "device", "threads", "backend"]


def kernel_benchmarks(db_url: str | None = None) -> pd.DataFrame:
    """The latest stored benchmark row per (kind, name, baseline, device, threads, backend), with
    ``memory_ratio`` = float bytes / packed bytes."""
    k = dbm.KernelBenchRecord
    columns = ["id", "created_at", "host", "device", "threads", "backend", "kind", "name", "shape", "baseline", "binary_ms",
               "baseline_ms", "ratio", "binary_gmacs", "packed_bytes", "float_bytes", "ceiling_ratio", "extra"]
    frame = _read(db_url, select(*(getattr(k, c) for c in columns)).order_by(k.id), columns)
    frame = frame.drop_duplicates(KERNEL_KEY, keep="last").reset_index(drop=True)
    frame["memory_ratio"] = [f / p if p else None for f, p in zip(frame["float_bytes"], frame["packed_bytes"])]
    return frame


# --- views: what the comparison and the runs say, as frames -------------------------------------

def comparison(papers: list[Paper], db_url: str | None = None, table: str | None = None,
               profile: str | None = None) -> list[TableComparison]:
    from .compare import compare
    return compare(papers, db_url, table, profile)


def delta_band(delta: float | None, std: float | None, published: float | None) -> str:
    """How large a delta is against the seeds' spread: ``within 1 std``, ``1-2 std`` or ``over
    2 std``; without a spread (one seed, or a deterministic measure) against the published value:
    ``within 1%``, ``1-5%`` or ``over 5%``; ``''`` when there is no delta."""
    if delta is None or pd.isna(delta):
        return ""
    if std is not None and not pd.isna(std) and std > 0:
        z = abs(delta) / std
        return "within 1 std" if z <= 1 else "1-2 std" if z <= 2 else "over 2 std"
    if published:
        pct = abs(100 * delta / published)
        return "within 1%" if pct <= 1 else "1-5%" if pct <= 5 else "over 5%"
    return "within 1%" if delta == 0 else "over 5%"


def cells(results: list[TableComparison]) -> pd.DataFrame:
    """Every cell of the comparison (as ``repro compare --format json``), with ``delta_band``."""
    columns = ["paper", "table", "row", "label", "metric", "published", "reproduced", "std", "n", "delta", "delta_pct",
               "profile", "source", "assumptions"]
    frame = pd.DataFrame([asdict(c) for r in results for c in r.cells], columns=columns)
    frame["delta_band"] = [delta_band(d, s, p) for d, s, p in zip(frame["delta"], frame["std"], frame["published"])]
    return frame


def comparisons(results: list[TableComparison]) -> pd.DataFrame:
    """The numbers behind each verdict: one row per comparison of a claim."""
    rows = [{"paper": v.paper, "table": v.table, "claim": v.claim, "profile": v.profile, **asdict(c)}
            for r in results for v in r.verdicts for c in v.comparisons]
    return pd.DataFrame(rows)


def assumptions(result: TableComparison) -> pd.DataFrame:
    every_row = [r.id for r in result.table.rows if r.runnable]
    return pd.DataFrame([{"assumption": text, "rows": "all rows" if rows == every_row else ", ".join(rows)}
                         for text, rows in result.assumptions.items()], columns=["assumption", "rows"])


def overview(papers: list[Paper], db_url: str | None = None) -> pd.DataFrame:
    """One row per (paper, table): published cells, cells reproduced by profile, claims by verdict
    (over every profile that judged them) and runs by state."""
    results = comparison(papers, db_url)
    counts = run_counts(db_url)
    rows = []
    for result in results:
        t = result.table
        reproduced = [c for c in result.cells if c.reproduced is not None]
        row = {"paper": t.paper_id, "table": t.id, "caption": t.caption, "task": t.task,
               "published cells": sum(1 for r in t.rows for _ in r.published),
               "cells compared": len({(c.row, c.metric) for c in reproduced
                                      if c.published is not None and get_profile(c.profile).numeric}),
               "claims": len(t.claims)}
        for profile in PROFILES:
            row[f"reproduced {profile}"] = sum(1 for c in reproduced if c.profile == profile)
        for verdict in VERDICTS:
            row[verdict] = sum(1 for v in result.verdicts if v.verdict == verdict)
        row["claims tested"] = len({v.claim for v in result.verdicts})
        mine = counts[(counts["paper"] == t.paper_id) & (counts["table"] == t.id)]
        for state in dbm.RUN_STATES:
            row[f"runs {state}"] = int(mine.loc[mine["status"] == state, "count"].sum())
        rows.append(row)
    return pd.DataFrame(rows)


def coverage(overview_frame: pd.DataFrame) -> pd.DataFrame:
    """Per paper: tables with any run; published cells compared number to number (``paper`` or
    ``structure``) against all published cells; claims with a verdict at some profile against all
    claims (a claim judged at two profiles counts once)."""
    runs_columns = [f"runs {s}" for s in dbm.RUN_STATES]
    rows = []
    for paper, group in overview_frame.groupby("paper", sort=False):
        published, compared = int(group["published cells"].sum()), int(group["cells compared"].sum())
        claims_total, judged = int(group["claims"].sum()), int(group["claims tested"].sum())
        rows.append({"paper": paper, "tables": len(group),
                     "tables with runs": int((group[runs_columns].sum(axis=1) > 0).sum()),
                     "published cells": published, "cells compared": compared,
                     "cells %": 100 * compared / published if published else 0.0,
                     "claims": claims_total, "claims tested": judged,
                     "claims %": 100 * judged / claims_total if claims_total else 0.0})
    return pd.DataFrame(rows)


def structure(paper: Paper, table_id: str, db_url: str | None = None) -> pd.DataFrame:
    """Per row of a table, the ``structure`` profile's measures (``STRUCTURE_MEASURES`` and any of
    the table's own metrics it measured, e.g. ``block_params_m``) beside the published values:
    columns ``row``, ``label``, ``measure``, ``measured``, ``published``, ``delta_pct``. A row
    counts only its runs of the current config (as in the comparison)."""
    from .compare import current_runs

    table = paper.table(table_id)
    found = runs(db_url, paper=paper.id, table=table.id, profile="structure", states=("finished",))
    current = current_runs(table, found)
    finals = final_metrics(db_url, paper=paper.id, table=table.id, profile="structure")
    finals = finals[finals["run_id"].isin(current["id"])]
    measures = STRUCTURE_MEASURES + [m for m in table.metrics if m in set(finals["name"]) and m not in STRUCTURE_MEASURES]
    by_run = dict(zip(current["id"], current["row"]))
    rows = []
    for row in table.rows:
        mine = finals[finals["run_id"].map(by_run) == row.id]
        for measure in measures:
            values = mine.loc[mine["name"] == measure, "value"]
            measured = float(statistics.fmean(values)) if len(values) else None
            published = row.published.get(measure)
            if measured is None and published is None:
                continue
            delta_pct = 100 * (measured - published) / published if measured is not None and published else None
            rows.append({"row": row.id, "label": row.label, "measure": measure, "measured": measured, "published": published,
                         "delta_pct": delta_pct})
    return pd.DataFrame(rows, columns=["row", "label", "measure", "measured", "published", "delta_pct"])


def efficiency_claims(papers: list[Paper], kernels: pd.DataFrame) -> pd.DataFrame:
    """The papers' efficiency claims beside what the stored benchmarks measured."""
    from .benchmarks import claim_measurement

    rows = []
    for paper in papers:
        for claim in paper.efficiency_claims:
            measured = claim_measurement(paper.id, claim, kernels)
            rows.append({"paper": paper.id, "claim": claim.id, "text": claim.text, "kind": claim.kind, "scope": claim.scope,
                         "device": claim.device, "claimed": claim.value, **measured})
    return pd.DataFrame(rows, columns=["paper", "claim", "text", "kind", "scope", "device", "claimed", "measured_min",
                                       "measured_median", "measured_max", "measured_rows", "measured"])
