"""``repro db stress``: many job processes writing runs and per-epoch metrics to one database at
once, through the same statements the jobs use (store a run, claim it, log its epochs, finish
it), then a count of what the database holds: lost or duplicated rows, runs claimed twice.

Every run is offered to two writers, so each claim is a race; a writer that loses it leaves it.
"""
from __future__ import annotations

import multiprocessing
import time

from sqlalchemy import delete, func, select

from . import db as dbm
from .recorder import SQLSink, Taken, claim

METRICS = ("loss", "score", "seconds")


def _writer(db_url: str, writer: int, runs: list[str], epochs: int, start, results) -> None:
    start.wait()
    claimed = 0
    for run_hash in runs:
        with dbm.session(db_url) as db:
            dbm.insert_ignore(db, dbm.RunRecord, [{"hash": run_hash, "paper_id": "stress", "table_id": "1",
                                                    "row_id": run_hash, "profile": "smoke", "seed": 0, "config": {},
                                                    "assumptions": {}, "status": "pending", "attempts": 0}], ["hash"])
            db.commit()
        try:
            run_pk, _, _, _ = claim(db_url, run_hash, f"writer-{writer}", executor="stress")
        except Taken:
            continue
        claimed += 1
        sink = SQLSink(db_url, run_pk)
        for epoch in range(1, epochs + 1):
            sink.log({name: float(epoch * 10 + i) for i, name in enumerate(METRICS)}, epoch)
        sink.log({name: float(i) for i, name in enumerate(METRICS)}, None)
        sink.update(status="finished", finished_at=dbm.utcnow())
    results.put((writer, claimed))


def stress(db_url: str, writers: int = 32, runs: int = 64, epochs: int = 10) -> dict:
    """Run the writers; returns what was expected and what the database holds."""
    dbm.engine_for(db_url)  # the schema, before the writers start
    hashes = [f"stress{i:04d}-{time.time_ns()}" for i in range(runs)]
    # every run offered to two writers: run i goes to writers i % W and (i + 1) % W
    assigned = [[h for i, h in enumerate(hashes) if w in (i % writers, (i + 1) % writers)] for w in range(writers)]
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    processes = [context.Process(target=_writer, args=(db_url, w, assigned[w], epochs, start, results))
                 for w in range(writers)]
    for process in processes:
        process.start()
    started = time.perf_counter()
    start.set()
    claims = sum(results.get(timeout=600)[1] for _ in processes)
    for process in processes:
        process.join()
    seconds = time.perf_counter() - started
    runs_table, metrics = dbm.RunRecord, dbm.MetricRecord
    with dbm.session(db_url) as db:
        mine = runs_table.hash.in_(hashes)
        stored = db.scalar(select(func.count()).select_from(runs_table).where(mine))
        finished = db.scalar(select(func.count()).select_from(runs_table).where(mine, runs_table.status == "finished"))
        pks = select(runs_table.id).where(mine)
        rows = db.scalar(select(func.count()).select_from(metrics).where(metrics.run_pk.in_(pks)))
        distinct = db.scalar(select(func.count()).select_from(
            select(metrics.run_pk, metrics.name, metrics.step).where(metrics.run_pk.in_(pks)).distinct().subquery()))
        db.execute(delete(metrics).where(metrics.run_pk.in_(pks)))  # the test's rows go: the database is as it was
        db.execute(delete(runs_table).where(mine))
        db.commit()
    expected_metrics = runs * (epochs + 1) * len(METRICS)
    return {"writers": writers, "runs": runs, "epochs": epochs, "seconds": seconds, "failed_writers":
            sum(p.exitcode != 0 for p in processes), "runs_stored": stored, "runs_finished": finished, "claims": claims,
            "metric_rows": rows, "metric_rows_expected": expected_metrics, "lost": expected_metrics - distinct,
            "duplicated": rows - distinct, "runs_lost": runs - stored, "claimed_twice": claims - runs}
