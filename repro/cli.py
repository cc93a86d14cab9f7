"""The ``repro`` command: list, run, compare, status, export, data, db, kernels.

Every user mistake ends in one line ``repro: error: ...`` and exit status 2, before the
database is touched. The choices offered (profiles, executors, formats) come from the core's
tables and registries, so a plugin's additions appear here too.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time

from sqlalchemy.exc import SQLAlchemyError

from .errors import ReproError
from .profiles import PROFILES


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.handler(args) or 0
    except ReproError as exc:
        print(f"repro: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except SQLAlchemyError as exc:  # a database fault met after opening (a damaged page, a lost server)
        from .db import describe_error
        print(f"repro: error: {describe_error(exc, getattr(args, 'db', None))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `repro status | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("repro: interrupted: finished runs are stored, stopped ones saved a checkpoint; "
              "run the same command again to resume", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM stops like Ctrl-C: the jobs are asked to stop and save first


class _Parser(argparse.ArgumentParser):
    """argparse's own errors are already one line with exit status 2; keep the usage out of it."""

    def error(self, message: str):
        self.exit(2, f"repro: error: {message} (see '{self.prog} --help')\n")


def _profile_help() -> str:
    return "; ".join(f"{p.name}: {p.description}" for p in PROFILES.values())


def build_parser() -> argparse.ArgumentParser:
    from .compare import FORMATS
    from .executors import default_jobs  # also registers the built-in executors
    from .registry import EXECUTORS

    parser = _Parser(prog="repro", description="Reproduce and benchmark binary neural network papers.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("list", help="papers, tables, rows and what each row needs")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(handler=cmd_list)

    p = sub.add_parser("run", help="run the rows of a table as jobs")
    p.add_argument("--paper", required=True)
    p.add_argument("--table", required=True)
    p.add_argument("--rows", help="comma-separated row ids (default: every runnable row)")
    p.add_argument("--profile", default="proxy", choices=list(PROFILES), help=f"(default: proxy) {_profile_help()}")
    p.add_argument("--seeds", type=int, help="seeds per row, 0..N-1 (default: the profile's: "
                   + ", ".join(f"{p.name} {p.default_seeds}" for p in PROFILES.values()) + ")")
    p.add_argument("--executor", default="local", choices=EXECUTORS.names(), help="(default: local)")
    p.add_argument("--jobs", type=int, help=f"local executor: runs at once, the cores shared among them (default: {default_jobs()})")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")
    cluster = p.add_argument_group("cluster (--executor slurm)")
    cluster.add_argument("--cluster", help="cluster profile: jobs/clusters/NAME.yaml (or a path to a YAML file)")
    cluster.add_argument("--partition")
    cluster.add_argument("--time", help="time limit a job, HH:MM:SS or D-HH:MM:SS")
    cluster.add_argument("--gpus", type=int, help="GPUs a job")
    cluster.add_argument("--array-parallelism", type=int, help="array tasks running at once")
    cluster.add_argument("--wait", action="store_true", help="follow the submitted jobs until they end")
    p.add_argument("--db", help="SQLAlchemy URL (default: $REPRO_DB or sqlite:///results.db)")
    p.add_argument("--force", action="store_true", help="run again even if a finished run exists")
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("compare", help="published vs reproduced values and the claims of each table")
    p.add_argument("--paper")
    p.add_argument("--table")
    p.add_argument("--profile", choices=list(PROFILES))
    p.add_argument("--db")
    p.add_argument("--format", default="text", choices=list(FORMATS))
    p.set_defaults(handler=cmd_compare)

    p = sub.add_parser("status", help="runs and their states")
    p.add_argument("--db")
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser("export", help="pack a finished binary run's model into 1-bit weights for the kernels")
    _add_run_arguments(p, default_profile="proxy")
    p.add_argument("--out", help="packed file (default: .repro/packed/<paper>-<table>-<row>-<profile>-s<seed>.pt)")
    p.set_defaults(handler=cmd_export)

    database = sub.add_parser("db", help="the results database")
    dsub = database.add_subparsers(dest="db_command", required=True, parser_class=_Parser)
    p = dsub.add_parser("stress", help="many processes writing runs and per-epoch metrics at once: count lost and "
                                       "duplicated rows")
    p.add_argument("--writers", type=int, default=32)
    p.add_argument("--runs", type=int, default=64, help="runs, each offered to two writers (default: 64)")
    p.add_argument("--epochs", type=int, default=10, help="per-epoch metric writes a run (default: 10)")
    p.add_argument("--db")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(handler=cmd_db_stress)

    data = sub.add_parser("data", help="the real datasets: what is in place, and how fast the data path is")
    dsub = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    p = dsub.add_parser("check", help="each dataset: what was found and where, its counts against the official ones, "
                                      "what is missing and where to put it")
    p.add_argument("--dataset", help="only this dataset (default: every one the tasks read)")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(handler=cmd_data_check)
    p = dsub.add_parser("bench", help="pose training samples a second (decode, crop, augment, heatmaps) per core, "
                                      "from MPII-format files it writes")
    p.add_argument("--workers", type=int, help="DataLoader worker processes (default: the CPUs this process may use)")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(handler=cmd_data_bench)

    kernels = sub.add_parser("kernels", help="binary XNOR-popcount kernels: benchmarks and stored results")
    ksub = kernels.add_subparsers(dest="kernels_command", required=True, parser_class=_Parser)
    p = ksub.add_parser("bench", help="binary GEMM / conv vs float32 BLAS at the papers' layer shapes")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch / kernel threads (default: 1)")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--pairs", type=int, default=7, help="alternating binary/baseline pairs per shape (default: 7)")
    p.add_argument("--only", help="only the shapes whose name contains this text")
    p.add_argument("--db")
    p.set_defaults(handler=cmd_kernels_bench)
    p = ksub.add_parser("bench-model", help="packed binary model vs the float model: latency, memory, file size")
    _add_run_arguments(p, default_profile="paper")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--pairs", type=int, default=5)
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(handler=cmd_kernels_bench_model)
    p = ksub.add_parser("show", help="stored kernel benchmarks beside the papers' efficiency claims")
    p.add_argument("--db")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(handler=cmd_kernels_show)
    return parser


def _add_run_arguments(p: argparse.ArgumentParser, default_profile: str) -> None:
    p.add_argument("--paper", required=True)
    p.add_argument("--table", required=True)
    p.add_argument("--row", required=True)
    p.add_argument("--profile", default=default_profile, choices=list(PROFILES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--db")


def cmd_export(args) -> None:
    from pathlib import Path

    from .export import export, find_run
    from .paths import home
    from .plugins import get_paper

    get_paper(args.paper).table(args.table).row(args.row)  # validates the names
    run = find_run(args.paper, args.table, args.row, args.profile, args.seed, args.db)
    out = Path(args.out) if args.out else home() / "packed" / f"{args.paper}-{args.table}-{args.row}-{args.profile}-s{args.seed}.pt"
    info = export(run, out)
    print(f"packed {info['packed_units']} binary conv units of run {run.hash} into {info['path']}: "
          f"{info['packed_bytes'] / 1e6:.3f} MB vs {info['float_bytes'] / 1e6:.3f} MB float32 state dict "
          f"({info['float_bytes'] / info['packed_bytes']:.1f}x smaller)")


def _check_positive(name: str, value: int) -> None:
    if value < 1:
        raise ReproError(f"--{name} must be at least 1, got {value}")


def cmd_db_stress(args) -> int:
    from .db import safe_url
    from .stress import stress

    for name in ("writers", "runs", "epochs"):
        _check_positive(name, getattr(args, name))
    result = stress(args.db, args.writers, args.runs, args.epochs)
    if args.format == "json":
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['writers']} writer processes, {result['runs']} runs (each offered to two writers), {result['epochs']} "
              f"epochs of {len(('loss', 'score', 'seconds'))} metrics a run, on {safe_url(args.db)}: {result['seconds']:.1f} s")
        print(f"runs stored {result['runs_stored']}/{result['runs']}, finished {result['runs_finished']}, claims "
              f"{result['claims']} (claimed twice: {result['claimed_twice']}); metric rows {result['metric_rows']}/"
              f"{result['metric_rows_expected']}: lost {result['lost']}, duplicated {result['duplicated']}; "
              f"writers that failed: {result['failed_writers']}")
    bad = result["lost"] or result["duplicated"] or result["claimed_twice"] or result["runs_lost"] or result["failed_writers"]
    return 1 if bad else 0


def cmd_data_check(args) -> int:
    """Exit status 0 when every dataset checked is in place (counts that differ are reported, not
    fatal), 1 when one is missing something."""
    from . import datasets

    names = [args.dataset] if args.dataset else datasets.names()
    reports = [datasets.check(name) for name in names]
    if args.format == "json":
        print(json.dumps([{"name": r.name, "where": str(r.where), "usable": r.usable, "complete": r.complete,
                           "found": r.found, "counts": [{"what": w, "found": f, "official": o} for w, f, o in r.counts],
                           "missing": r.missing, "notes": r.notes, "source": r.source} for r in reports], indent=2))
    else:
        print(f"data folder: {datasets.data_root().resolve()} (REPRO_DATA_DIR)")
        for report in reports:
            print("\n".join(report.lines()))
    return 0 if all(r.usable for r in reports) else 1


def cmd_data_bench(args) -> None:
    from .tasks.pose import bench

    if args.workers is not None:
        _check_positive("workers", args.workers)
    result = bench.run(workers=args.workers)
    if args.format == "json":
        print(json.dumps(result, indent=2))
        return
    print(f"pose data path on {result['cpu_model']}: {result['image']} -> {result['input_size']}x{result['input_size']} "
          f"crops + {result['heatmap_size']}x{result['heatmap_size']} heatmaps, batch {result['batch_size']}, "
          f"augment {result['augment']}")
    print(f"  {result['workers']} worker(s): {result['samples_per_s']:.1f} samples/s; "
          f"{result['samples_per_s_per_core']:.1f} samples/s per core (samples per CPU-second of all processes)")
    print(f"  one process, one thread: {result['single_process_samples_per_s']:.1f} samples/s "
          f"(decoding one whole image alone: {result['full_decode_ms']:.2f} ms)")


def cmd_kernels_bench(args) -> None:
    import dataclasses

    from . import benchmarks
    from .plugins import discover

    _check_positive("threads", args.threads)
    _check_positive("pairs", args.pairs)
    echo = print if args.format == "text" else None
    rows = benchmarks.run(list(discover().values()), args.device, args.threads, args.pairs, args.only, echo)
    benchmarks.store(rows, args.db)
    if args.format == "json":
        print(json.dumps([dataclasses.asdict(r) for r in rows], indent=2))


def cmd_kernels_bench_model(args) -> None:
    import dataclasses

    from . import benchmarks
    from .plugins import get_paper

    _check_positive("threads", args.threads)
    _check_positive("pairs", args.pairs)
    echo = print if args.format == "text" else None
    _, rows = benchmarks.bench_model(get_paper(args.paper), args.table, args.row, args.profile, args.seed, args.db,
                                     args.threads, args.pairs, echo)
    benchmarks.store(rows, args.db)
    if args.format == "json":
        print(json.dumps([dataclasses.asdict(r) for r in rows], indent=2, default=str))


def cmd_kernels_show(args) -> None:
    from . import benchmarks, results
    from .plugins import discover

    kernels = results.kernel_benchmarks(args.db)
    if args.format == "json":
        shown = kernels.drop(columns=["id", "host", "binary_gmacs", "memory_ratio"])
        shown["created_at"] = [t.isoformat() for t in shown["created_at"]]
        print(json.dumps(shown.astype(object).where(shown.notna(), None).to_dict("records"), indent=2))
        return
    print(benchmarks.render_stored(kernels, list(discover().values())))


def cmd_list(args) -> None:
    from .config import resolve
    from .plugins import discover
    from .tasks import get_task
    from .text import columns

    def needs(table, row) -> dict[str, str]:
        """Profile -> the dataset the row trains on at that profile."""
        if not row.runnable:
            return {}
        return {p.name: resolve(table, row, p.name, 0).config["data"]["name"] if p.needs_data
                else "no data (measures the model)" for p in PROFILES.values()}

    papers = discover()
    listing = []
    for paper in papers.values():
        tables = []
        for table in paper.tables.values():
            tables.append({
                "id": table.id, "caption": table.caption, "task": table.task, "dataset": table.dataset,
                "metrics": list(table.metrics), "claims": [c.text for c in table.claims],
                "assumptions": {**(get_task(table.task).assumptions if any(r.runnable for r in table.rows) else {}),
                                **table.assumptions},
                "rows": [{"id": r.id, "label": r.label, "published": r.published, "runnable": r.runnable,
                          "not_runnable_reason": r.not_runnable_reason or None,
                          "profiles": needs(table, r)} for r in table.rows],
            })
        listing.append({"id": paper.id, "title": paper.title, "venue": paper.venue, "year": paper.year, "tables": tables})
    if args.format == "json":
        print(json.dumps(listing, indent=2))
        return
    for paper in listing:
        print(f"{paper['id']}: {paper['title']} ({paper['venue']} {paper['year']})")
        for table in paper["tables"]:
            print(f"  table {table['id']}: {table['caption']} [{table['task']} on {table['dataset']}; "
                  f"metrics: {', '.join(table['metrics'])}; {len(table['assumptions'])} assumptions, see --format json]")
            body = []
            for row in table["rows"]:
                published = ", ".join(f"{k}={v:g}" for k, v in row["published"].items())
                if row["runnable"]:
                    needs = ", ".join(f"{p}: {data}" for p, data in row["profiles"].items())
                else:
                    needs = f"not runnable: {row['not_runnable_reason']}"
                body.append([row["id"], row["label"], published, needs])
            for line in columns(["row", "label", "published", "data by profile"], body):
                print(f"    {line}")


def cmd_run(args) -> int:
    from . import db as dbm
    from .plugins import discover, get_paper
    from .profiles import get_profile
    from .runner import execute, executor_kind, plan_runs

    started = time.perf_counter()
    paper = get_paper(args.paper)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows else None
    seeds = args.seeds if args.seeds is not None else get_profile(args.profile).default_seeds
    if args.jobs is not None:
        _check_positive("jobs", args.jobs)
    plan = plan_runs(paper, args.table, rows, args.profile, seeds)
    options = {"cluster": args.cluster, "partition": args.partition, "time": args.time, "gpus": args.gpus,
               "array_parallelism": args.array_parallelism}
    if args.executor != "slurm" and any(v is not None for v in options.values()):
        raise ReproError("--cluster, --partition, --time, --gpus and --array-parallelism are for --executor slurm")
    executor_kind(args.executor).check(options)  # no sbatch, an unknown or malformed cluster profile: before the database
    with dbm.session(args.db) as db:  # first touch of the database: everything above is validated
        dbm.sync_papers(db, discover().values())
    print(f"{paper.id} table {plan.table.id}: {len(plan.runs)} run(s) at profile '{args.profile}' ({seeds} seed(s) a row) "
          f"on the {args.executor} executor, results in {dbm.safe_url(args.db)}")
    wait = args.wait or not executor_kind(args.executor).arrays
    counts = execute(plan, args.db, args.executor, force=args.force, jobs=args.jobs, quiet=args.quiet, options=options,
                     wait=wait)
    if not wait:
        print(f"submitted {counts.get('submitted', 0)} run(s) in {time.perf_counter() - started:.1f} s "
              f"(planned, stored and submitted)")
    print("done: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v))
    return 0 if counts["failed"] == 0 and counts["diverged"] == 0 else 1


def cmd_compare(args) -> None:
    from . import db as dbm
    from .compare import compare, render
    from .plugins import discover, get_paper

    if args.table and not args.paper:
        raise ReproError("--table needs --paper")
    papers = [get_paper(args.paper)] if args.paper else list(discover().values())
    if args.table:
        papers[0].table(args.table)
    with dbm.session(args.db) as db:
        dbm.sync_papers(db, discover().values())
    print(render(compare(papers, args.db, args.table, args.profile), args.format))


def cmd_status(args) -> None:
    from .runner import cluster_view
    from .text import columns

    view = cluster_view(args.db)
    if not view:
        print("no runs yet: try 'repro run --paper bulat2019 --table 1'")
        return
    body = []
    for run, state in view:
        total = next((v for k, v in run.final_metrics().items() if k.endswith("total")), None)
        error = (run.error or "").splitlines()[0][:80] if run.error else ""
        seconds = f"{run.duration_s:.0f}" if run.duration_s is not None else "—"
        body.append([run.hash, run.paper_id, run.table_id, run.row_id, str(run.seed), run.profile, run.status,
                     run.executor or "", run.job_id or "", state, str(run.attempts or 0), seconds,
                     "" if total is None else f"{total:.1f}", error])
    header = ["hash", "paper", "table", "row", "seed", "profile", "status", "executor", "job", "job state", "attempts",
              "seconds", "total", "error"]
    for line in columns(header, body, right={4, 10, 11, 12}):
        print(line)


if __name__ == "__main__":
    sys.exit(main())
