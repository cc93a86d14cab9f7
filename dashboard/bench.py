"""How fast the dashboard's Table page renders on a full database:
``python -m repro_dashboard.bench [--runs 1000] [--renders 5] [--format text|json]``.

Builds a temporary SQLite database holding every paper's tables and published targets and
``--runs`` finished runs of bulat2019 Table 1 at the proxy profile (all of them on the page
rendered: the worst case), each with its final metric and 16 epochs of curves. Their values are
drawn from a seeded generator: benchmark fixtures, never stored as results. It then renders the
Table page with Streamlit's AppTest (the script run the server does for a browser's visit) and
prints the seconds of its first render after the server started (Streamlit's own start-up paid
by another page first, as a server pays it at launch; the table's config hashes not yet cached)
and the median of the renders after it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

APP = Path(__file__).resolve().parent / "app.py"
PAPER, TABLE, EPOCHS = "bulat2019", "1", 16


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fill(db_url: str, runs: int) -> int:
    """Every paper's targets, and ``runs`` finished proxy runs of the table (rows x seeds)."""
    from repro import db as dbm
    from repro import results
    from repro.plugins import discover, get_paper
    from repro.runner import plan_runs

    with dbm.session(db_url) as db:
        dbm.sync_papers(db, discover().values())
    table = get_paper(PAPER).table(TABLE)
    rows = sum(r.runnable for r in table.rows)
    plan = plan_runs(get_paper(PAPER), TABLE, None, "proxy", -(-runs // rows))
    chosen = [rc for rc in plan.runs if rc.identity["table"] == TABLE][:runs]
    draw = random.Random(0)
    with dbm.session(db_url) as db:
        db.execute(dbm.RunRecord.__table__.insert(), [{
            "hash": rc.hash, "paper_id": PAPER, "table_id": TABLE, "row_id": rc.identity["row"], "profile": "proxy",
            "seed": rc.identity["seed"], "config": rc.config, "assumptions": rc.assumptions, "status": "finished",
            "executor": "local", "attempts": 1, "duration_s": draw.uniform(60, 120), "host": "bench"} for rc in chosen])
        db.commit()
        stored = results.runs(db_url)
        ids = dict(zip(stored["hash"], stored["id"]))
        metrics = []
        for rc in chosen:
            final = draw.gauss(40, 5)
            metrics.append({"run_pk": ids[rc.hash], "name": "pckh_total", "value": final, "step": None})
            for epoch in range(1, EPOCHS + 1):
                metrics.append({"run_pk": ids[rc.hash], "name": "pckh_total", "value": final * epoch / EPOCHS, "step": epoch})
                metrics.append({"run_pk": ids[rc.hash], "name": "train_loss", "value": 1 / epoch, "step": epoch})
        db.execute(dbm.MetricRecord.__table__.insert(), metrics)
        db.commit()
    return len(chosen)


def timed_renders(db_url: str, renders: int) -> tuple[float, list[float]]:
    """Seconds of the Table page's script runs in one app session (what the server does for each
    visit): the first after start-up, then ``renders`` more."""
    from streamlit.testing.v1 import AppTest

    before = os.environ.get("REPRO_DB")
    os.environ["REPRO_DB"] = db_url  # the app reads it; put back after, so nothing later inherits a removed database
    try:
        app = AppTest.from_file(str(APP), default_timeout=300)
        app.switch_page("views/kernels.py")
        app.run()  # Streamlit's own start-up (a server pays it once, at launch)
        app.switch_page("views/table.py")
        app.query_params.update({"paper": PAPER, "table": TABLE})
        seconds = []
        for _ in range(renders + 1):
            started = time.perf_counter()
            app.run()
            seconds.append(time.perf_counter() - started)
            if app.exception:
                raise SystemExit(f"the table page failed: {app.exception[0].message}")
    finally:
        if before is None:
            os.environ.pop("REPRO_DB", None)
        else:
            os.environ["REPRO_DB"] = before
    return seconds[0], seconds[1:]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m repro_dashboard.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--renders", type=int, default=5, help="renders after the first (default: 5)")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        db_url = f"sqlite:///{Path(folder) / 'results.db'}"
        stored = fill(db_url, args.runs)
        first, later = timed_renders(db_url, args.renders)
    from repro.plugins import discover
    result = {"runs": stored, "tables": sum(len(p.tables) for p in discover().values()), "first_render_s": first,
              "render_s_median": statistics.median(later), "render_s_max": max(later), "renders": len(later),
              "cpu": cpu_model(), "cores": os.cpu_count()}
    if args.format == "json":
        print(json.dumps(result, indent=2))
        return
    print(f"Table page of {PAPER} Table {TABLE} with {result['tables']} tables' targets and {stored} finished runs on that "
          f"table in the database ({result['cpu']}, {result['cores']} cores): first render after start-up "
          f"{first:.2f} s, then median {result['render_s_median']:.2f} s (max {result['render_s_max']:.2f} s) over "
          f"{len(later)} renders")


if __name__ == "__main__":
    main()
