"""Published vs reproduced, per cell, and each claim of a table with its verdict.

Only runs whose hash matches the row's current config count (runs of an older config are
reported as stale, never mixed in). ``paper`` results are compared number to number (delta);
``proxy`` and ``smoke`` results run on other data and budgets, so they are judged by the
table's claims only.
"""
from __future__ import annotations

import csv
import io
import json
import math
import statistics
from dataclasses import asdict, dataclass, field

from sqlalchemy import select

from . import db as dbm
from .config import resolve
from .errors import ReproError
from .plugins import Paper, Table

FORMATS = ("text", "markdown", "csv", "json", "latex")
NUMERIC_PROFILES = ("paper", "structure")  # profiles compared number to number


@dataclass
class Cell:
    paper: str
    table: str
    row: str
    label: str
    metric: str
    published: float | None
    reproduced: float | None
    std: float | None
    n: int
    delta: float | None
    delta_pct: float | None
    profile: str | None
    source: str = ""
    assumptions: list[str] = field(default_factory=list)


@dataclass
class Verdict:
    paper: str
    table: str
    claim: str
    text: str
    profile: str
    verdict: str  # holds / fails / inconclusive
    details: list[str]


@dataclass
class TableComparison:
    table: Table
    cells: list[Cell]
    verdicts: list[Verdict]
    assumptions: dict[str, list[str]]  # assumption text -> rows it applies to
    stale: int


def compare(papers: list[Paper], db_url: str | None, table_id: str | None = None,
            profile: str | None = None) -> list[TableComparison]:
    with dbm.session(db_url) as db:
        runs = list(db.scalars(select(dbm.RunRecord).where(dbm.RunRecord.status == "finished")))
        finals = {run.id: run.final_metrics() for run in runs}
    results = []
    for paper in papers:
        tables = [paper.table(table_id)] if table_id else list(paper.tables.values())
        for table in tables:
            mine = [r for r in runs if r.paper_id == paper.id and r.table_id == table.id and (profile is None or r.profile == profile)]
            results.append(_compare_table(table, mine, finals, profile))
    return results


def _compare_table(table: Table, runs, finals, profile_filter) -> TableComparison:
    profiles = sorted({r.profile for r in runs}) or [profile_filter]
    current, stale = {}, 0
    for run in runs:
        row = next((r for r in table.rows if r.id == run.row_id), None)
        if row is None or not row.runnable or resolve(table, row, run.profile, run.seed).hash != run.hash:
            stale += 1
            continue
        current.setdefault((run.row_id, run.profile), []).append(run)
    cells, assumptions = [], {}
    stats: dict[tuple[str, str, str], tuple[float, float | None, int]] = {}
    for profile in profiles:
        measured = {name for (row_id, prof), rs in current.items() if prof == profile for r in rs for name in finals[r.id]}
        for row in table.rows:
            row_runs = current.get((row.id, profile), [])
            row_notes = sorted({text for run in row_runs for text in run.assumptions.values()})
            for text in row_notes:
                assumptions.setdefault(text, []).append(row.id)
            for metric in table.metrics:
                if measured and metric not in measured:
                    continue  # e.g. accuracy columns under the structure profile
                values = [finals[r.id][metric] for r in row_runs if metric in finals[r.id] and not math.isnan(finals[r.id][metric])]
                mean = statistics.fmean(values) if values else None
                std = statistics.stdev(values) if len(values) > 1 else None
                if values:
                    stats[(row.id, profile, metric)] = (mean, std, len(values))
                published = row.published.get(metric)
                comparable = mean is not None and published is not None and profile in NUMERIC_PROFILES
                delta = mean - published if comparable else None
                delta_pct = 100 * delta / published if comparable and published else None
                if published is None and mean is None:
                    continue
                cells.append(Cell(table.paper_id, table.id, row.id, row.label, metric, published, mean, std, len(values),
                                  delta, delta_pct, profile, table.target_source(row, metric) if published is not None else "", row_notes))
    verdicts = [_judge(table, claim, profile, stats) for profile in profiles if profile for claim in table.claims]
    for text in assumptions:
        assumptions[text] = sorted(set(assumptions[text]), key=[r.id for r in table.rows].index)
    return TableComparison(table, cells, verdicts, assumptions, stale)


def _judge(table: Table, claim, profile: str, stats) -> Verdict:
    """A comparison holds when mean ± std intervals do not overlap in the claimed direction.

    One seed gives no spread, so it decides nothing: the verdict is inconclusive and the
    detail says which way the means point.
    """
    outcomes, details = [], []
    for left, op, right in claim.comparisons:
        a, b = stats.get((left, profile, claim.metric)), stats.get((right, profile, claim.metric))
        if a is None or b is None:
            outcomes.append("inconclusive")
            details.append(f"{left} {op} {right}: runs missing")
            continue
        (ma, sa, na), (mb, sb, nb) = a, b
        if op in ("<", "<="):
            (ma, sa, na), (mb, sb, nb), shown = (mb, sb, nb), (ma, sa, na), f"{left} {op} {right}"
        else:
            shown = f"{left} {op} {right}"
        means_agree = ma > mb if op in (">", "<") else ma >= mb
        text = f"{shown}: {_fmt_stat(*a)} vs {_fmt_stat(*b)}"
        if na < 2 or nb < 2:
            outcomes.append("inconclusive")
            details.append(f"{text} (1 seed: means {'agree' if means_agree else 'disagree'})")
        elif ma - sa > mb + sb or (op in (">=", "<=") and ma - sa >= mb + sb):
            outcomes.append("holds")
            details.append(text)
        elif ma + sa < mb - sb:
            outcomes.append("fails")
            details.append(text)
        else:
            outcomes.append("inconclusive")
            details.append(f"{text} (seeds overlap; means {'agree' if means_agree else 'disagree'})")
    verdict = "fails" if "fails" in outcomes else "holds" if all(o == "holds" for o in outcomes) else "inconclusive"
    return Verdict(table.paper_id, table.id, claim.id, claim.text, profile, verdict, details)


def _fmt_stat(mean, std, n) -> str:
    return f"{mean:.1f}±{std:.1f} (n={n})" if std is not None else f"{mean:.1f} (n={n})"


# --- formatting -------------------------------------------------------------------------------

def render(results: list[TableComparison], fmt: str) -> str:
    if fmt not in FORMATS:
        raise ReproError(f"unknown format '{fmt}': choose from {', '.join(FORMATS)}")
    if fmt == "json":
        return json.dumps({"cells": [asdict(c) for r in results for c in r.cells],
                           "claims": [asdict(v) for r in results for v in r.verdicts]}, indent=2)
    if fmt == "csv":
        out = io.StringIO()
        fields = ["paper", "table", "row", "label", "metric", "published", "reproduced", "std", "n", "delta", "delta_pct",
                  "profile", "source"]
        writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for r in results:
            for c in r.cells:
                writer.writerow(asdict(c))
        return out.getvalue()
    return "\n\n".join(_render_table(r, fmt) for r in results)


def _num(value, digits=1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _rows(result: TableComparison) -> tuple[list[str], list[list[str]]]:
    header = ["row", "label", "metric", "published", "reproduced", "std", "n", "delta", "delta %", "profile"]
    body = []
    for c in result.cells:
        delta = _num(c.delta, 2) if c.profile in NUMERIC_PROFILES else ("claims only" if c.n else "—")
        digits = 2 if c.profile == "structure" else 1
        body.append([c.row, c.label, c.metric, _num(c.published, digits), _num(c.reproduced, digits), _num(c.std),
                     str(c.n), delta, _num(c.delta_pct), c.profile or "—"])
    return header, body


def _render_table(result: TableComparison, fmt: str) -> str:
    t = result.table
    title = f"{t.paper_id} Table {t.id}: {t.caption}"
    header, body = _rows(result)
    claims = [f"[{v.verdict}] {v.text} ({v.profile}): " + "; ".join(v.details) for v in result.verdicts]
    every_row = [r.id for r in t.rows if r.runnable]
    notes = [f"{text} ({'all rows' if rows == every_row else 'rows: ' + ', '.join(rows)})"
             for text, rows in result.assumptions.items()]
    if result.stale:
        notes.append(f"{result.stale} finished run(s) of an older config ignored")
    if fmt == "latex":
        esc = lambda s: str(s).replace("_", r"\_").replace("%", r"\%").replace("&", r"\&").replace("#", r"\#")
        lines = [r"\begin{table}", r"\centering", rf"\caption{{{esc(title)}}}", r"\begin{tabular}{" + "l" * 3 + "r" * 6 + "l}",
                 r"\toprule", " & ".join(esc(h) for h in header) + r" \\", r"\midrule"]
        lines += [" & ".join(esc(x) for x in row) + r" \\" for row in body]
        lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
        lines += [f"% claim: {esc(c)}" for c in claims] + [f"% assumption: {esc(n)}" for n in notes]
        return "\n".join(lines)
    if fmt == "markdown":
        lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        if claims:
            lines += ["", "**Claims**", ""] + [f"- {c}" for c in claims]
        if notes:
            lines += ["", "**Assumptions**", ""] + [f"- {n}" for n in notes]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
    fmt_row = lambda cols: "  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip()
    lines = [title, fmt_row(header), fmt_row(["-" * w for w in widths])] + [fmt_row(r) for r in body]
    if claims:
        lines += ["Claims:"] + [f"  {c}" for c in claims]
    if notes:
        lines += ["Assumptions:"] + [f"  - {n}" for n in notes]
    return "\n".join(lines)
