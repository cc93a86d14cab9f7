"""Published vs reproduced, per cell, and each claim of a table with its verdict.

Only runs whose hash matches the row's current config count (runs of an older config are
reported as stale, never mixed in). Profiles compared number to number (``paper``,
``structure``) get a delta; the others are judged by the table's claims only.

A claim is a set of comparisons between rows (``a > b``). Under a profile whose values vary
with the seed, each comparison is Welch's one-sided t-test of the difference of the rows' means
(scipy.stats.ttest_ind, unequal variances) at ``ALPHA``: it holds when the difference is
significant in the claimed direction, fails when it is significant the other way at
``ALPHA / m`` (Bonferroni over the claim's m comparisons), and is inconclusive otherwise. A claim
holds when all its comparisons hold (an intersection-union test: its level is ``ALPHA``), fails
when one fails. An inconclusive comparison says what the seeds could resolve: the smallest
difference detectable at this spread (one-sided, ``ALPHA``, power ``POWER``), against the
published effect, and how many seeds a row that effect would need. Deterministic profiles
(``structure``) compare the measured values directly.

``a ~ b`` (the claim's ``margin``: "nearly the same") is an equivalence test, Schuirmann's two
one-sided tests: it holds when both ``a - b > -margin`` and ``a - b < margin`` are significant at
``ALPHA`` (so the difference lies within the margin), fails when the difference is significantly
outside the margin at ``ALPHA / m``, and is inconclusive otherwise.
"""
from __future__ import annotations

import csv
import io
import json
import math
import statistics
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from . import results
from .config import resolve
from .errors import ReproError
from .plugins import Claim, Paper, Table
from .profiles import PROFILES, get_profile
from .text import FORMATS, columns

ALPHA = 0.05   # one-sided significance level of each comparison
POWER = 0.8    # power at which the resolvable difference is computed
MAX_SEEDS = 1000


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
class Comparison:
    """One ``left op right`` of a claim under one profile, with the numbers behind its outcome."""
    left: str
    op: str
    right: str
    outcome: str  # holds / fails / inconclusive
    mean_left: float | None = None
    std_left: float | None = None
    n_left: int = 0
    mean_right: float | None = None
    std_right: float | None = None
    n_right: int = 0
    difference: float | None = None  # left - right
    p_value: float | None = None  # one-sided, in the claimed direction
    resolvable: float | None = None  # smallest difference detectable at this spread
    published_effect: float | None = None  # published left - right
    seeds_needed: int | None = None  # seeds a row for the published effect at this spread
    detail: str = ""


@dataclass
class Verdict:
    paper: str
    table: str
    claim: str
    text: str
    profile: str
    metric: str
    verdict: str  # holds / fails / inconclusive
    test: str
    comparisons: list[Comparison]

    @property
    def details(self) -> list[str]:
        return [c.detail for c in self.comparisons]


@dataclass
class TableComparison:
    table: Table
    cells: list[Cell]
    verdicts: list[Verdict]
    assumptions: dict[str, list[str]]  # assumption text -> rows it applies to
    stale: int
    notes: list[str] = field(default_factory=list)  # what is missing and the command that fills it


def compare(papers: list[Paper], db_url: str | None, table_id: str | None = None,
            profile: str | None = None) -> list[TableComparison]:
    one = papers[0].id if len(papers) == 1 else None  # narrow the queries where the caller did
    table_filter = table_id if one else None
    runs = results.runs(db_url, paper=one, table=table_filter, profile=profile, states=("finished",))
    finals = results.final_metrics(db_url, paper=one, table=table_filter, profile=profile)
    compared = []
    for paper in papers:
        tables = [paper.table(table_id)] if table_id else list(paper.tables.values())
        for table in tables:
            mine = runs[(runs["paper"] == paper.id) & (runs["table"] == table.id)]
            compared.append(_compare_table(table, mine, finals, profile))
    return compared


_CURRENT_HASHES: dict[tuple, tuple[Table, str | None]] = {}


def current_hash(table: Table, row_id: str, profile: str, seed: int) -> str | None:
    """The config hash a run of this row, profile and seed has today (None: the row is gone or
    no longer runnable). Cached per loaded table: resolving takes about a millisecond."""
    key = (id(table), row_id, profile, int(seed))
    hit = _CURRENT_HASHES.get(key)
    if hit is not None and hit[0] is table:
        return hit[1]
    row = next((r for r in table.rows if r.id == row_id), None)
    try:
        value = resolve(table, row, profile, int(seed)).hash if row is not None and row.runnable else None
    except ReproError:  # a profile or config that no longer resolves: the run is of an older config
        value = None
    _CURRENT_HASHES[key] = (table, value)
    return value


def current_runs(table: Table, runs: pd.DataFrame) -> pd.DataFrame:
    """The runs (a :func:`repro.results.runs` frame) of the table's current configs; the others
    are stale, of an older config, and never mixed in."""
    keep = [current_hash(table, row, profile, seed) == hash_
            for row, profile, seed, hash_ in zip(runs["row"], runs["profile"], runs["seed"], runs["hash"])]
    return runs[keep] if len(runs) else runs


def _compare_table(table: Table, runs: pd.DataFrame, finals: pd.DataFrame, profile_filter: str | None) -> TableComparison:
    current = current_runs(table, runs)
    stale = len(runs) - len(current)
    by_key = {key: group for key, group in current.groupby(["row", "profile"], sort=False)} if len(current) else {}
    profiles = [p for p in PROFILES if any(prof == p for _, prof in by_key)]
    mine = finals[finals["run_id"].isin(current["id"]) & finals["name"].isin(list(table.metrics)) & finals["value"].notna()]
    where = dict(zip(current["id"], zip(current["row"], current["profile"])))
    values: dict[tuple[str, str, str], list[float]] = {}
    for run_id, metric, value in zip(mine["run_id"], mine["name"], mine["value"]):
        row_id, prof = where[run_id]
        values.setdefault((row_id, prof, metric), []).append(float(value))
    cells, assumptions = [], {}
    for row in table.rows:
        notes_by_profile = {prof: _assumption_texts(by_key.get((row.id, prof))) for prof in profiles}
        for texts in notes_by_profile.values():
            for text in texts:
                assumptions.setdefault(text, []).append(row.id)
        for metric in table.metrics:
            published = row.published.get(metric)
            measured = [prof for prof in profiles if (row.id, prof, metric) in values]
            source = table.target_source(row, metric) if published is not None else ""
            if not measured and published is not None:  # published values stay visible, whatever was run
                cells.append(Cell(table.paper_id, table.id, row.id, row.label, metric, published, None, None, 0,
                                  None, None, None, source))
            for prof in measured:
                vals = values[(row.id, prof, metric)]
                mean = statistics.fmean(vals)
                std = statistics.stdev(vals) if len(vals) > 1 else None
                numeric = get_profile(prof).numeric and published is not None
                delta = mean - published if numeric else None
                delta_pct = 100 * delta / published if numeric and published else None
                cells.append(Cell(table.paper_id, table.id, row.id, row.label, metric, published, mean, std, len(vals),
                                  delta, delta_pct, prof, source, notes_by_profile[prof]))
    verdicts = []
    for prof in profiles:
        for claim in table.claims:
            if any(key[1] == prof and key[2] == claim.metric for key in values):  # this profile measures the claim
                verdicts.append(_judge(table, claim, prof, values))
    for text in assumptions:
        assumptions[text] = sorted(set(assumptions[text]), key=[r.id for r in table.rows].index)
    return TableComparison(table, cells, verdicts, assumptions, stale, _missing(table, values, profile_filter))


def _assumption_texts(runs: pd.DataFrame | None) -> list[str]:
    if runs is None:
        return []
    return sorted({text for notes in runs["assumptions"] for text in (notes or {}).values()})


def _missing(table: Table, values: dict, profile_filter: str | None) -> list[str]:
    """Lines saying what no run measures yet, each with the command that would measure it."""
    if not any(r.runnable for r in table.rows):
        return []
    base = f"repro run --paper {table.paper_id} --table {table.id}"
    if not values:
        profile = profile_filter or "proxy"
        return [f"no runs yet{f' at profile {profile_filter}' if profile_filter else ''}: {base} --profile {profile}"]
    notes = []
    judged = {metric for (_, _, metric) in values}
    unjudged = sorted({c.metric for c in table.claims} - judged)
    if unjudged and (profile_filter is None or get_profile(profile_filter).trains):
        notes.append(f"claims on {', '.join(unjudged)}: no run measures them yet: {base} --profile {profile_filter or 'proxy'}")
    return notes


def _judge(table: Table, claim: Claim, profile: str, values: dict) -> Verdict:
    deterministic = get_profile(profile).deterministic
    m = len(claim.comparisons)
    comparisons = [_compare(table, claim.metric, left, op, right, values.get((left, profile, claim.metric), []),
                            values.get((right, profile, claim.metric), []), deterministic, m, claim.margin)
                   for left, op, right in claim.comparisons]
    outcomes = [c.outcome for c in comparisons]
    verdict = "fails" if "fails" in outcomes else "holds" if all(o == "holds" for o in outcomes) else "inconclusive"
    test = test_description(profile)
    return Verdict(table.paper_id, table.id, claim.id, claim.text, profile, claim.metric, verdict, test, comparisons)


def test_description(profile: str) -> str:
    """How a profile's claims are judged, in one sentence (shown above them)."""
    if get_profile(profile).deterministic:
        return "measured values compared directly (deterministic)"
    return (f"Welch's one-sided t-test per comparison at {100 * (1 - ALPHA):.0f}% confidence; a claim holds when every "
            f"comparison holds, fails when one is significant the other way at {ALPHA:g}/m (m: the claim's comparisons); "
            f"'a ~ b' (nearly the same, within the claim's margin): two one-sided tests, both significant to hold, "
            f"outside the margin at {ALPHA:g}/m to fail")


def _compare(table: Table, metric: str, left: str, op: str, right: str, a: list[float], b: list[float],
             deterministic: bool, m: int, margin: float | None = None) -> Comparison:
    shown = f"{left} {op} {right}" + (f" (within +-{margin:g})" if op == "~" else "")
    result = Comparison(left, op, right, "inconclusive")
    if not a or not b:
        result.detail = f"{shown}: runs missing"
        return result
    if op == "~":
        return _equivalence(table, metric, shown, a, b, deterministic, m, margin, result)
    sign = 1 if op in (">", ">=") else -1  # compare in the claimed direction: sign * (left - right) > 0
    sa, sb, diff, text = _summarize(table, metric, shown, a, b, deterministic, result)
    directed = sign * diff
    if deterministic:
        result.outcome = "holds" if directed > 0 or (directed == 0 and op in (">=", "<=")) else "fails"
        result.detail = text
        return result
    if len(a) < 2 or len(b) < 2:
        result.detail = (f"{text} (1 seed: no spread to test; the means {'agree' if directed > 0 else 'disagree'}; "
                         f"run --seeds 3 or more)")
        return result
    se = math.sqrt(sa ** 2 / len(a) + sb ** 2 / len(b))
    if se == 0:  # identical values within each row: the difference is exact
        result.p_value = 0.0 if directed > 0 else 1.0
        result.outcome = "holds" if directed > 0 or (directed == 0 and op in (">=", "<=")) else "fails"
        result.detail = f"{text} (no spread over seeds)"
        return result
    alternative = "greater" if sign > 0 else "less"
    with warnings.catch_warnings():  # nearly equal seeds: scipy warns of precision it does not need here
        warnings.simplefilter("ignore", RuntimeWarning)
        test = scipy_stats.ttest_ind(a, b, equal_var=False, alternative=alternative)
        p_other = float(scipy_stats.ttest_ind(a, b, equal_var=False, alternative="less" if sign > 0 else "greater").pvalue)
    result.p_value = float(test.pvalue)
    text += f", p = {result.p_value:.2g}"
    if result.p_value < ALPHA:
        result.outcome = "holds"
        result.detail = text
        return result
    if p_other < ALPHA / m:
        result.outcome = "fails"
        result.detail = f"{text} (significant the other way: p = {p_other:.2g})"
        return result
    df = float(test.df)
    result.resolvable = (scipy_stats.t.ppf(1 - ALPHA, df) + scipy_stats.t.ppf(POWER, df)) * se
    extra = f"resolvable at this spread: {result.resolvable:.2g}"
    effect = result.published_effect
    if effect is not None:
        directed_effect = sign * effect
        if directed_effect > 0:
            result.seeds_needed = _seeds_needed(directed_effect, sa, sb)
            needed = f"about {result.seeds_needed} seeds a row" if result.seeds_needed else f"more than {MAX_SEEDS} seeds a row"
            extra += f"; the published effect {effect:+.3g} would need {needed}"
        else:
            extra += f"; the published effect {effect:+.3g} is not in the claimed direction"
    result.detail = f"{text}; {extra}"
    return result


def _summarize(table: Table, metric: str, shown: str, a: list[float], b: list[float], deterministic: bool,
               result: Comparison) -> tuple[float | None, float | None, float, str]:
    """Both rows' means and spreads and the published effect into ``result``; (std left, std right,
    difference, the line's opening text)."""
    ma, mb = statistics.fmean(a), statistics.fmean(b)
    sa = statistics.stdev(a) if len(a) > 1 else None
    sb = statistics.stdev(b) if len(b) > 1 else None
    result.mean_left, result.std_left, result.n_left = ma, sa, len(a)
    result.mean_right, result.std_right, result.n_right = mb, sb, len(b)
    result.difference = ma - mb
    pa, pb = (table.row(result.left).published.get(metric), table.row(result.right).published.get(metric))
    result.published_effect = pa - pb if pa is not None and pb is not None else None
    digits = table.metrics[metric].digits if metric in table.metrics else None
    text = (f"{shown}: {_fmt(ma, sa, len(a), deterministic, digits)} vs {_fmt(mb, sb, len(b), deterministic, digits)}, "
            f"difference {ma - mb:+.3g}")
    return sa, sb, ma - mb, text


def _equivalence(table: Table, metric: str, shown: str, a: list[float], b: list[float], deterministic: bool, m: int,
                 margin: float, result: Comparison) -> Comparison:
    """``a ~ b`` within +-margin: two one-sided Welch tests (TOST)."""
    sa, sb, diff, text = _summarize(table, metric, shown, a, b, deterministic, result)
    published = f"; published difference {result.published_effect:+.3g}" if result.published_effect is not None else ""
    inside = abs(diff) <= margin
    if deterministic or (sa == 0 and sb == 0):
        result.outcome = "holds" if inside else "fails"
        result.detail = text + ("" if deterministic else " (no spread over seeds)") + published
        return result
    if len(a) < 2 or len(b) < 2:
        result.detail = f"{text} (1 seed: no spread to test; run --seeds 3 or more){published}"
        return result
    shifted = lambda delta, alternative: float(scipy_stats.ttest_ind(  # noqa: E731
        [x - delta for x in a], b, equal_var=False, alternative=alternative).pvalue)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p_equivalent = max(shifted(-margin, "greater"), shifted(margin, "less"))  # a - b > -margin and a - b < margin
        p_outside = min(shifted(margin, "greater"), shifted(-margin, "less"))     # a - b > margin, or a - b < -margin
    result.p_value = p_equivalent
    text += f", TOST p = {p_equivalent:.2g}"
    if p_equivalent < ALPHA:
        result.outcome = "holds"
    elif p_outside < ALPHA / m:
        result.outcome = "fails"
        text += f" (significantly outside the margin: p = {p_outside:.2g})"
    result.detail = text + published
    return result


def _seeds_needed(effect: float, sa: float, sb: float) -> int | None:
    """Seeds a row (both rows alike) for a one-sided Welch test at ALPHA to detect ``effect`` with
    POWER, at the spreads ``sa`` and ``sb`` (Welch-Satterthwaite degrees of freedom)."""
    va, vb = sa ** 2, sb ** 2
    n = np.arange(2, MAX_SEEDS + 1, dtype=float)  # every candidate at once: ppf vectorizes, a loop of calls does not
    df = (n - 1) * (va + vb) ** 2 / (va ** 2 + vb ** 2) if va + vb > 0 else n - 1
    enough = (scipy_stats.t.ppf(1 - ALPHA, df) + scipy_stats.t.ppf(POWER, df)) * np.sqrt((va + vb) / n) <= effect
    return int(n[enough.argmax()]) if enough.any() else None


def _fmt(mean: float, std: float | None, n: int, deterministic: bool, digits: int | None = None) -> str:
    """A row's value in a claim's line: the metric's own decimals (e.g. 3 for a fraction), else 1."""
    if deterministic:
        return f"{mean:.4g}"
    d = 1 if digits is None else digits
    return f"{mean:.{d}f}±{std:.{d}f} (n={n})" if std is not None else f"{mean:.{d}f} (n={n})"


# --- formatting -------------------------------------------------------------------------------

def render(results: list[TableComparison], fmt: str) -> str:
    if fmt not in FORMATS:
        raise ReproError(f"unknown format '{fmt}': choose from {', '.join(FORMATS)}")
    if fmt == "json":
        return json.dumps({"cells": [asdict(c) for r in results for c in r.cells],
                           "claims": [{**asdict(v), "details": v.details} for r in results for v in r.verdicts],
                           "notes": [{"paper": r.table.paper_id, "table": r.table.id, "note": n} for r in results for n in r.notes]},
                          indent=2)
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
        profile = get_profile(c.profile) if c.profile else None
        delta = _num(c.delta, 2) if profile and profile.numeric else ("claims only" if c.n else "—")
        digits = 2 if profile and profile.deterministic else 1  # measured counts: more digits, no spread
        metric = result.table.metrics.get(c.metric)
        digits = metric.digits if metric is not None and metric.digits is not None else digits  # e.g. fractions
        std = "—" if profile and profile.deterministic else _num(c.std, digits)
        body.append([c.row, c.label, c.metric, _num(c.published, digits), _num(c.reproduced, digits), std,
                     str(c.n) if c.n else "—", delta, _num(c.delta_pct), c.profile or "—"])
    return header, body


def _render_table(result: TableComparison, fmt: str) -> str:
    t = result.table
    title = f"{t.paper_id} Table {t.id}: {t.caption}"
    header, body = _rows(result)
    claims = []  # (line, its comparisons' lines), grouped by profile under the test that judged them
    for profile in dict.fromkeys(v.profile for v in result.verdicts):
        claims.append((f"Claims at {profile} ({test_description(profile)}):", []))
        mine = [v for v in result.verdicts if v.profile == profile]
        claims += [(f"[{v.verdict}] {v.text} ({v.metric})", v.details) for v in mine]
        counts = {verdict: sum(v.verdict == verdict for v in mine) for verdict in ("holds", "fails", "inconclusive")}
        claims.append((f"[verdicts at {profile}] " + ", ".join(f"{n} {verdict}" for verdict, n in counts.items()), []))
    every_row = [r.id for r in t.rows if r.runnable]
    notes = [f"{text} ({'all rows' if rows == every_row else 'rows: ' + ', '.join(rows)})"
             for text, rows in result.assumptions.items()]
    if result.stale:
        notes.append(f"{result.stale} finished run(s) of an older config ignored")
    if fmt == "latex":
        esc = lambda s: str(s).replace("_", r"\_").replace("%", r"\%").replace("&", r"\&").replace("#", r"\#")  # noqa: E731
        lines = [r"\begin{table}", r"\centering", rf"\caption{{{esc(title)}}}", r"\begin{tabular}{" + "l" * 3 + "r" * 6 + "l}",
                 r"\toprule", " & ".join(esc(h) for h in header) + r" \\", r"\midrule"]
        lines += [" & ".join(esc(x) for x in row) + r" \\" for row in body]
        lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
        lines += [f"% {esc(c)}" + "".join(f"; {esc(d)}" for d in details) for c, details in claims]
        lines += [f"% assumption: {esc(n)}" for n in notes]
        lines += [f"% {esc(n)}" for n in result.notes]
        return "\n".join(lines)
    if fmt == "markdown":
        lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        for claim, details in claims:
            lines += (["", f"**{claim}**", ""] if not claim.startswith("[") else [f"- {claim}"]) + [f"  - {d}" for d in details]
        if notes:
            lines += ["", "**Assumptions**", ""] + [f"- {n}" for n in notes]
        if result.notes:
            lines += [""] + [f"*{n}*" for n in result.notes]
        return "\n".join(lines)
    lines = [title] + columns(header, body, right={3, 4, 5, 6, 7, 8})
    for claim, details in claims:
        lines += [claim if not claim.startswith("[") else f"  {claim}"] + [f"      {d}" for d in details]
    if notes:
        lines += ["Assumptions:"] + [f"  - {n}" for n in notes]
    lines += result.notes
    return "\n".join(lines)
