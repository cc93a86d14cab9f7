"""The ``repro`` command: list, run, compare, status.

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
    return parser


def cmd_list(args) -> None:
    from .config import PROFILES, resolve
    from .plugins import discover

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
            print(f"  table {table['id']}: {table['caption']} [{table['task']} on {table['dataset']}; metrics: {', '.join(table['metrics'])}]")
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
