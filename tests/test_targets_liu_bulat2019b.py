"""The published targets of bulat2019b and liu2020 against the seed texts they are copied from.

For every paper table the test reads its block of lines of the seed text (the header line to
the last row) from tests/fixtures/seed_tables.json: verbatim excerpts, written and located by
tests/fixtures/regenerate_seed_tables.py and checked against the seed texts themselves, where
those are at hand, by tests/test_targets_bulat.py::test_vendored_seed_tables_match_the_seed_texts.
It splits each line into cells (tab or 2+ spaces) and takes the numeric data cells ("78.4%",
"6.2M", "0.013 M", "1.7G", "0.040"). Then:

* the number of targets in the YAML equals the number of numeric cells of the table;
* the YAML values, read in the paper's reading order (row by row, or metric by metric for the
  transposed tables), are exactly those cells: every value occurs, in the right place;
* the numbers that are part of labels are excluded explicitly and listed per table (EXCLUDED):
  citations ("HBC [4]"), names ("ResNet-56", "VGG16", "LBRN-1", "Top1"), the bold numbers of
  liu2020 Table 3 / Table 5 column labels (stored as specs: lbb_1x1_filters / stacks) and the
  unreadable "1- 1" cells of liu2020 Table 8 (left out of the YAML);
* the sparsity values that label the rows of liu2020 Tables 2 and 8 are stored as
  ``model.block_args.sparsity`` in the row specs, and checked there.
"""
from __future__ import annotations

import functools
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from repro.plugins import Table, load_paper_file

REPO = Path(__file__).resolve().parents[1]
SEED_TABLES = REPO / "tests" / "fixtures" / "seed_tables.json"
SEED_FILES = {"bulat2019b": "001_ac67303822b4e047.txt", "liu2020": "003_ff802868c586aa8f.txt"}

NUM_CELL = re.compile(r"(\d+(?:\.\d+)?) ?(?:%|M|G)?")  # a data cell: the number and its unit
ANY_NUMBER = re.compile(r"\d+(?:\.\d+)?")  # every number in the block, labels included
TAG = re.compile(r"<[^>]+>")  # liu2020 prints bold column labels as <b>...</b>


@dataclass(frozen=True)
class Layout:
    transposed: bool = False  # liu2020 prints most tables with networks as columns
    excluded: tuple[str, ...] = ()  # numbers inside labels, not targets (see the module docstring)
    label_column: bool = False  # the first cell of each data line is a number used as a row label
    label_lines: str | None = None  # regex of lines whose numbers are all row labels


LAYOUTS = {
    ("bulat2019b", "1"): Layout(),
    ("bulat2019b", "2"): Layout(excluded=("1", "5")),  # "Top1", "Top5"
    ("bulat2019b", "3"): Layout(excluded=("4",)),  # "HBC [4]"
    ("bulat2019b", "4"): Layout(excluded=("1", "5", "8", "31", "12")),  # "Top1", "Top5", "[8]", "[31]", "[12]"
    ("liu2020", "1"): Layout(transposed=True),
    ("liu2020", "2"): Layout(label_column=True),
    ("liu2020", "3"): Layout(transposed=True, excluded=("256", "128", "64", "1", "256")),  # LBRN(256/128/64), LBRN-1(256)
    ("liu2020", "4"): Layout(transposed=True, excluded=("1", "2", "3")),  # LBRN-1/2/3
    ("liu2020", "5"): Layout(transposed=True,
                             excluded=("8", "4", "8", "4", "8")),  # SHN(8), SHN(4), LBRN(8), LBRN(4), LBRN(8, half)
    ("liu2020", "6"): Layout(transposed=True),
    ("liu2020", "7"): Layout(transposed=True),
    ("liu2020", "8"): Layout(label_lines=r"^Sparsity\t", excluded=("1", "1", "1", "1")),  # the two unreadable "1- 1" cells
    ("liu2020", "9"): Layout(excluded=("1", "5", "10", "100") + ("56",) * 6),  # top-1/5, CIFAR-10/100, ResNet-(LBB-)56
    ("liu2020", "10"): Layout(excluded=("16", "16", "50", "50")),  # VGG16 x2, ResNet50 x2
}


@functools.cache
def load(paper_id: str):
    return load_paper_file(REPO / "methods" / paper_id / "paper.yaml")


def cells(line: str) -> list[str]:
    return [TAG.sub("", c).strip() for c in re.split(r"\t| {2,}", line.rstrip())]


@functools.cache
def _vendored() -> dict:
    return json.loads(SEED_TABLES.read_text(encoding="utf-8"))


def table_block(paper_id: str, table_id: str) -> list[str]:
    """The lines of one table of the paper's seed text (header line first), as vendored."""
    return _vendored()["papers"][paper_id][SEED_FILES[paper_id]][table_id]


@dataclass
class Parsed:
    lines: list[tuple[str, list[str]]]  # (line label, numeric data cells) for lines with data
    labels: list[str]  # numbers used as row labels
    all_numbers: list[str]
    all_cells: set[str]
    header: list[str]


def parse(block: list[str], layout: Layout) -> Parsed:
    data, labels, all_cells = [], [], set()
    for line in block:
        row = cells(line)
        all_cells.update(row)
        numeric = [m.group(1) for c in row if (m := NUM_CELL.fullmatch(c))]
        if layout.label_lines and re.search(layout.label_lines, line):
            labels += numeric
            continue
        if layout.label_column and numeric and NUM_CELL.fullmatch(row[0]):
            labels.append(numeric.pop(0))
        if numeric:
            data.append((row[0], numeric))
    return Parsed(lines=data, labels=labels, all_numbers=ANY_NUMBER.findall("\n".join(block)),
                  all_cells=all_cells, header=[c for c in cells(block[0]) if c])


def yaml_values(table: Table, transposed: bool) -> list[float]:
    """The targets in the paper's reading order."""
    if transposed:
        return [r.published[m] for m in table.metrics for r in table.rows if m in r.published]
    return [r.published[m] for r in table.rows for m in table.metrics if m in r.published]


CASES = sorted(LAYOUTS, key=lambda k: (k[0], int(k[1])))


@pytest.mark.parametrize("paper_id, table_id", CASES, ids=[f"{p}-table{t}" for p, t in CASES])
def test_targets_match_the_seed_text(paper_id, table_id):
    layout = LAYOUTS[(paper_id, table_id)]
    table = load(paper_id).table(table_id)
    parsed = parse(table_block(paper_id, table_id), layout)
    paper = [v for _, numbers in parsed.lines for v in numbers]
    ours = yaml_values(table, layout.transposed)

    # (a) as many targets as numeric cells in the paper's table
    assert len(ours) == len(paper), f"{len(ours)} targets in the YAML, {len(paper)} numeric cells in the paper"
    # (b) every value occurs among the table's numbers ...
    assert Counter(ours) == Counter(float(v) for v in paper)
    # ... and in the right place (reading order = rows x columns of the paper)
    assert ours == [float(v) for v in paper]

    # Every other number in the block is an explicitly listed label number or a row label.
    leftover = Counter(parsed.all_numbers) - Counter(paper) - Counter(parsed.labels)
    assert leftover == Counter(layout.excluded), f"numbers not accounted for: {leftover}"

    # Each metric maps to a heading as printed (but those the text states and the table does not print).
    printed = [m for m in table.metrics.values() if m.printed]
    for metric in printed:
        assert metric.column in parsed.all_cells, f"heading {metric.column!r} not in the table"
    assert not any(m.name in r.published for m in table.metrics.values() if not m.printed for r in table.rows)
    if layout.transposed:
        # Lines are metrics, in the YAML's metric order; columns are rows, in the YAML's row order.
        assert [label for label, _ in parsed.lines] == [m.column for m in printed]
        assert parsed.header == [r.source_row for r in table.rows]
        for metric, (_, numbers) in zip(table.metrics, parsed.lines):
            assert len(numbers) == sum(metric in r.published for r in table.rows)


@pytest.mark.parametrize("table_id", ["2", "8"])
def test_liu2020_sparsity_labels_are_row_specs(table_id):
    layout = LAYOUTS[("liu2020", table_id)]
    table = load("liu2020").table(table_id)
    parsed = parse(table_block("liu2020", table_id), layout)
    assert [float(v) for v in parsed.labels] == [r.spec["model"]["block_args"]["sparsity"] for r in table.rows]


def test_liu2020_table5_stack_labels_are_row_specs():
    table = load("liu2020").table("5")
    stacks = [r.spec["model"]["stacks"] for r in table.rows]
    assert [str(s) for s in stacks] == list(LAYOUTS[("liu2020", "5")].excluded)


def test_every_published_table_is_listed(workdir, capsys):
    from repro.cli import main

    assert main(["list", "--format", "json"]) == 0
    listing = {paper["id"]: paper for paper in json.loads(capsys.readouterr().out)}
    assert [t["id"] for t in listing["bulat2019b"]["tables"]] == ["1", "2", "3", "4"]
    assert [t["id"] for t in listing["liu2020"]["tables"]] == [str(i) for i in range(1, 11)]
    for paper_id in ("bulat2019b", "liu2020"):
        for table in listing[paper_id]["tables"]:
            for row in table["rows"]:
                assert row["runnable"] or row["not_runnable_reason"].startswith(("needs", "saliency"))
