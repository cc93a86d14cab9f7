"""The ``repro`` command: list, run, compare, status, export, kernels.

Every user mistake ends in one line ``repro: error: ...`` and exit status 2, before the
database is touched.
"""
from __future__ import annotations

import argparse
import json
import sys

from .errors import ReproError


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args) or 0
    except ReproError as exc:
        print(f"repro: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # `repro status | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("repro: interrupted: finished runs are stored; run the same command again to resume", file=sys.stderr)
        return 130


class _Parser(argparse.ArgumentParser):
    """argparse's own errors are already one line with exit status 2; keep the usage out of it."""

    def error(self, message: str):
        self.exit(2, f"repro: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="repro", description="Reproduce and benchmark binary neural network papers.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("list", help="papers, tables, rows and what each row needs")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(handler=cmd_list)

    p = sub.add_parser("run", help="run the rows of a table as jobs")
    p.add_argument("--paper", required=True)
    p.add_argument("--table", required=True)
    p.add_argument("--rows", help="comma-separated row ids (default: every runnable row)")
    p.add_argument("--profile", default="proxy", help="smoke | proxy | paper (default: proxy)")
    p.add_argument("--seeds", type=int, default=1, help="number of seeds per row, 0..N-1 (default: 1)")
    p.add_argument("--executor", default="local", help="local | debug (default: local)")
    p.add_argument("--db", help="SQLAlchemy URL (default: $REPRO_DB or sqlite:///results.db)")
    p.add_argument("--force", action="store_true", help="run again even if a finished run exists")
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("compare", help="published vs reproduced values and the claims of each table")
    p.add_argument("--paper")
    p.add_argument("--table")
    p.add_argument("--profile")
    p.add_argument("--db")
    p.add_argument("--format", default="text", help="text | markdown | csv | json | latex")
    p.set_defaults(handler=cmd_compare)

    p = sub.add_parser("status", help="runs and their states")
    p.add_argument("--db")
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser("export", help="pack a finished binary run's model into 1-bit weights for the kernels")
    _add_run_arguments(p, default_profile="proxy")
    p.add_argument("--out", help="packed file (default: .repro/packed/<paper>-<table>-<row>-<profile>-s<seed>.pt)")
    p.set_defaults(handler=cmd_export)

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
    p.add_argument("--profile", default=default_profile)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--db")


def cmd_export(args) -> None:
    from pathlib import Path

    from kernels.export import export, find_run

    from .paths import home
    from .plugins import get_paper

    get_paper(args.paper).table(args.table).row(args.row)  # validates the names
    run = find_run(args.paper, args.table, args.row, args.profile, args.seed, args.db)
    out = Path(args.out) if args.out else home() / "packed" / f"{args.paper}-{args.table}-{args.row}-{args.profile}-s{args.seed}.pt"
    info = export(run, out)
    print(f"packed {info['packed_units']} binary conv units of run {run.hash} into {info['path']}: "
          f"{info['packed_bytes'] / 1e6:.3f} MB vs {info['float_bytes'] / 1e6:.3f} MB float32 state dict "
          f"({info['float_bytes'] / info['packed_bytes']:.1f}x smaller)")


def _check_threads(threads: int) -> None:
    if threads < 1:
        raise ReproError(f"--threads must be at least 1, got {threads}")


def cmd_kernels_bench(args) -> None:
    import dataclasses

    import torch

    from kernels import bench

    _check_threads(args.threads)
    if args.pairs < 1:
        raise ReproError(f"--pairs must be at least 1, got {args.pairs}")
    echo = print if args.format == "text" else None
    if args.device == "cuda":
        from kernels import cuda
        if reason := cuda.unavailable_reason():
            raise ReproError(f"--device cuda: {reason}; the GPU benchmarks need a CUDA GPU and nvcc")
        if echo:
            tc = cuda.tensor_core_unavailable_reason()
            echo(f"binary kernels on {torch.cuda.get_device_name()} (CUDA cores{'' if tc else ', 1-bit tensor cores'}) "
                 f"vs cuBLAS / torch._int_mm; activations packed in each call ('alone': pre-packed); wall time, "
                 f"device-synchronized; medians of {args.pairs} alternating pairs; ratio = baseline time / binary time"
                 + (f"; tensor-core kernel skipped: {tc}" if tc else ""))
            echo(bench.GPU_HEADER)
        rows = bench.run_gpu(args.pairs, args.only, echo=echo)
    else:
        if echo:
            from kernels import ops
            echo(f"binary (kernels: {ops.backend()}) vs float32 torch on cpu, {args.threads} thread(s), "
                 f"{bench.clock(args.threads)[1]}; medians of {args.pairs} alternating pairs; ratio = float time / binary time")
            echo(bench.HEADER)
        rows = bench.run(args.threads, args.pairs, args.only, echo=echo)
    if not rows:
        raise ReproError(f"no benchmark shape matches --only '{args.only}'")
    bench.store(rows, args.db)
    if args.format == "json":
        print(json.dumps([dataclasses.asdict(r) for r in rows], indent=2))


def cmd_kernels_bench_model(args) -> None:
    import dataclasses

    from kernels import bench
    from kernels.export import build, find_run, load_trained

    from .config import resolve
    from .plugins import get_paper

    _check_threads(args.threads)
    table = get_paper(args.paper).table(args.table)
    config = resolve(table, table.row(args.row), args.profile, args.seed).config
    if not config.get("conv", {}).get("binary"):
        raise ReproError(f"row '{args.row}' is a real-valued network: nothing to pack")
    try:
        config, model = load_trained(find_run(args.paper, args.table, args.row, args.profile, args.seed, args.db))
        source = "trained weights"
    except ReproError:
        model, source = build(config), "untrained weights (no finished run at this profile): timing and sizes only"
    echo = print if args.format == "text" else None
    if echo:
        echo(f"{args.paper} table {args.table} row {args.row} at profile {args.profile}, {source}; batch 1, "
             f"{args.threads} thread(s), {bench.clock(args.threads)[1]}, medians of {args.pairs} alternating pairs")
    rows = bench.bench_model(config, model, args.threads, args.pairs, echo=echo)
    bench.store(rows, args.db)
    if args.format == "json":
        print(json.dumps([dataclasses.asdict(r) for r in rows], indent=2, default=str))


def cmd_kernels_show(args) -> None:
    from kernels import bench

    records = bench.stored(args.db)
    if args.format == "json":
        print(json.dumps([{"kind": r.kind, "name": r.name, "shape": r.shape, "baseline": r.baseline, "device": r.device,
                           "threads": r.threads, "backend": r.backend, "binary_ms": r.binary_ms,
                           "baseline_ms": r.baseline_ms, "ratio": r.ratio, "packed_bytes": r.packed_bytes,
                           "float_bytes": r.float_bytes, "ceiling_ratio": r.ceiling_ratio, "extra": r.extra,
                           "created_at": r.created_at.isoformat()} for r in records], indent=2))
        return
    print(bench.render_stored(records))


def cmd_list(args) -> None:
    from .config import PROFILES, resolve
    from .plugins import discover
    from .tasks import get_task

    papers = discover()
    listing = []
    for paper in papers.values():
        tables = []
        for table in paper.tables.values():
            def needs(row) -> dict[str, str]:
                """Profile -> the dataset the row trains on at that profile."""
                if not row.runnable:
                    return {}
                return {p: "no data (measures the model)" if p == "structure" else resolve(table, row, p, 0).config["data"]["name"]
                        for p in PROFILES}

            tables.append({
                "id": table.id, "caption": table.caption, "task": table.task, "dataset": table.dataset,
                "metrics": list(table.metrics), "claims": [c.text for c in table.claims],
                "assumptions": {**(get_task(table.task).assumptions if any(r.runnable for r in table.rows) else {}),
                                **table.assumptions},
                "rows": [{"id": r.id, "label": r.label, "published": r.published, "runnable": r.runnable,
                          "not_runnable_reason": r.not_runnable_reason or None,
                          "profiles": needs(r)} for r in table.rows],
            })
        listing.append({"id": paper.id, "title": paper.title, "venue": paper.venue, "year": paper.year, "tables": tables})
    if args.format == "json":
        print(json.dumps(listing, indent=2))
        return
    for paper in listing:
        print(f"{paper['id']}: {paper['title']} ({paper['venue']} {paper['year']})")
        for table in paper["tables"]:
            print(f"  table {table['id']}: {table['caption']} [{table['task']} on {table['dataset']}; metrics: {', '.join(table['metrics'])}; "
                  f"{len(table['assumptions'])} assumptions, see --format json]")
            for row in table["rows"]:
                published = ", ".join(f"{k}={v:g}" for k, v in row["published"].items())
                if row["runnable"]:
                    needs = ", ".join(f"{p}: {data}" for p, data in row["profiles"].items())
                else:
                    needs = f"not runnable: {row['not_runnable_reason']}"
                print(f"    {row['id']:<24} {row['label']:<40} {published:<18} {needs}")


def cmd_run(args) -> int:
    from . import db as dbm
    from .plugins import discover, get_paper
    from .runner import EXECUTORS, execute, plan_runs

    if args.executor not in EXECUTORS:
        raise ReproError(f"unknown executor '{args.executor}': choose from {', '.join(EXECUTORS)}")
    paper = get_paper(args.paper)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows else None
    plan = plan_runs(paper, args.table, rows, args.profile, args.seeds)
    with dbm.session(args.db) as db:  # first touch of the database: everything above is validated
        dbm.sync_papers(db, discover().values())
    print(f"{paper.id} table {plan.table.id}: {len(plan.runs)} run(s) at profile '{args.profile}' on the {args.executor} executor")
    counts = execute(plan, args.db, args.executor, force=args.force)
    print("done: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v))
    return 0 if counts["failed"] == 0 and counts["diverged"] == 0 else 1


def cmd_compare(args) -> None:
    from . import db as dbm
    from .compare import FORMATS, compare, render
    from .config import PROFILES
    from .plugins import discover, get_paper

    if args.format not in FORMATS:
        raise ReproError(f"unknown format '{args.format}': choose from {', '.join(FORMATS)}")
    if args.profile and args.profile not in PROFILES:
        raise ReproError(f"unknown profile '{args.profile}': choose from {', '.join(PROFILES)}")
    if args.table and not args.paper:
        raise ReproError("--table needs --paper")
    papers = [get_paper(args.paper)] if args.paper else list(discover().values())
    if args.table:
        papers[0].table(args.table)
    with dbm.session(args.db) as db:
        dbm.sync_papers(db, discover().values())
    print(render(compare(papers, args.db, args.table, args.profile), args.format))


def cmd_status(args) -> None:
    from sqlalchemy import select

    from . import db as dbm

    with dbm.session(args.db) as db:
        runs = list(db.scalars(select(dbm.RunRecord).order_by(dbm.RunRecord.id)))
        if not runs:
            print("no runs yet: try 'repro run --paper bulat2019 --table 1'")
            return
        print(f"{'hash':<16}  {'paper':<10} {'table':<5} {'row':<14} {'seed':>4} {'profile':<8} {'status':<9} {'seconds':>8}  {'total':>6}  error")
        for run in runs:
            total = next((v for k, v in run.final_metrics().items() if k.endswith("total")), None)
            error = (run.error or "").splitlines()[0][:60] if run.error else ""
            seconds = f"{run.duration_s:.0f}" if run.duration_s is not None else "—"
            print(f"{run.hash:<16}  {run.paper_id:<10} {run.table_id:<5} {run.row_id:<14} {run.seed:>4} {run.profile:<8} "
                  f"{run.status:<9} {seconds:>8}  {'' if total is None else f'{total:6.1f}'}  {error}")


if __name__ == "__main__":
    sys.exit(main())
