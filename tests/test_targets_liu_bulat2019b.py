"""The published targets of bulat2019b and liu2020 against the seed texts they are copied from.

For every paper table the test finds its block of lines in the seed text (a regex for the
header line and one for the last row), splits each line into cells (tab or 2+ spaces) and
takes the numeric data cells ("78.4%", "6.2M", "0.013 M", "1.7G", "0.040"). Then:

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
SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"
SEED_FILES = {"bulat2019b": "001_ac67303822b4e047.txt", "liu2020": "003_ff802868c586aa8f.txt"}

NUM_CELL = re.compile(r"(\d+(?:\.\d+)?) ?(?:%|M|G)?")  # a data cell: the number and its unit
ANY_NUMBER = re.compile(r"\d+(?:\.\d+)?")  # every number in the block, labels included
TAG = re.compile(r"<[^>]+>")  # liu2020 prints bold column labels as <b>...</b>


@dataclass(frozen=True)
class Layout:
    start: str  # regex matching the table's header line (exactly one line in the text)
    end: str  # regex matching its last line (the first match after the header)
    transposed: bool = False  # liu2020 prints most tables with networks as columns
    excluded: tuple[str, ...] = ()  # numbers inside labels, not targets (see the module docstring)
    label_column: bool = False  # the first cell of each data line is a number used as a row label
    label_lines: str | None = None  # regex of lines whose numbers are all row labels


LAYOUTS = {
    ("bulat2019b", "1"): Layout(r"^Decomposition\s+Holistic\s+Learn\. alpha\s+PCKh\s*$", r"^Tucker\s+✓\s+✓\s+82\.5%"),
    ("bulat2019b", "2"): Layout(r"^Decomposition\s+Holistic\s+Learn\. alpha\s+Top1\s+Top5\s*$", r"^Tucker\s+✓\s+✓\s+55\.6%",
                                excluded=("1", "5")),  # "Top1", "Top5"
    ("bulat2019b", "3"): Layout(r"^Method\s+#parameters\s+PCKh\s*$", r"^Real valued\s+6\.0M",
                                excluded=("4",)),  # "HBC [4]"
    ("bulat2019b", "4"): Layout(r"^Method\s+Top1 accuracy\s+Top5 accuracy\s*$", r"^Real valued \[12\]",
                                excluded=("1", "5", "8", "31", "12")),  # "Top1", "Top5", "[8]", "[31]", "[12]"
    ("liu2020", "1"): Layout(r"^\tHG-Binary\tBinary\tSHN\tLBRN-S\tPRM\tLBRN-P$", r"^FLOPs\t", transposed=True),
    ("liu2020", "2"): Layout(r"^Sparsity\tElbow\tWrist\tKnee\tAnkle\tTotal$", r"^0\.9\t", label_column=True),
    ("liu2020", "3"): Layout(r"^\tLBRN\( <b>256</b> \)\tLBRN\(128\)", r"^Total\t", transposed=True,
                             excluded=("256", "128", "64", "1", "256")),  # LBRN(256/128/64), LBRN-1(256)
    ("liu2020", "4"): Layout(r"^\tLBRN-1\tLBRN-2\tLBRN-3$", r"^Total\t", transposed=True,
                             excluded=("1", "2", "3")),  # LBRN-1/2/3
    ("liu2020", "5"): Layout(r"^\tSHN\(8\)\tSHN\( <b>4</b> \)", r"^Total\t", transposed=True,
                             excluded=("8", "4", "8", "4", "8")),  # SHN(8), SHN(4), LBRN(8), LBRN(4), LBRN(8, half)
    ("liu2020", "6"): Layout(r"^\tLBRN-relu\tLBRN-sigmoid$", r"^Total\t", transposed=True),
    ("liu2020", "7"): Layout(r"^\tSHN\tLBRN-S\tPRM\tLBRN-P$", r"^Total\t", transposed=True),
    ("liu2020", "8"): Layout(r"^Sparsity\t0\.1\t0\.2", r"^Total\t92\.0\t", label_lines=r"^Sparsity\t",
                             excluded=("1", "1", "1", "1")),  # the two unreadable "1- 1" cells
    ("liu2020", "9"): Layout(r"^Dataset\tNetwork\ttop-1\ttop-5\tFLOPs\t#Param$", r"^\tResNet-LBB-56\t9\.8\t",
                             excluded=("1", "5", "10", "100") + ("56",) * 6),  # top-1/5, CIFAR-10/100, ResNet-(LBB-)56
    ("liu2020", "10"): Layout(r"^Method\tBackbone\tECS", r"^CPD-LB\tResNet50\t",
                              excluded=("16", "16", "50", "50")),  # VGG16 x2, ResNet50 x2
}

pytestmark_seeds = pytest.mark.skipif(not SEEDS.is_dir(), reason=f"seed texts not found at {SEEDS} (shared/ beside the repo)")


@functools.cache
def load(paper_id: str):
    return load_paper_file(REPO / "methods" / paper_id / "paper.yaml")


def cells(line: str) -> list[str]:
    return [TAG.sub("", c).strip() for c in re.split(r"\t| {2,}", line.rstrip())]


def table_block(paper_id: str, layout: Layout) -> list[str]:
    lines = (SEEDS / SEED_FILES[paper_id]).read_text(encoding="utf-8").splitlines()
    starts = [i for i, line in enumerate(lines) if re.search(layout.start, line)]
    assert len(starts) == 1, f"header {layout.start!r} found {len(starts)} times"
    ends = [i for i in range(starts[0] + 1, len(lines)) if re.search(layout.end, lines[i])]
    assert ends, f"last row {layout.end!r} not found after the header"
    block = lines[starts[0]:ends[0] + 1]
    assert len(block) <= 25, "the block ran past the table"
    return block


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


@pytestmark_seeds
@pytest.mark.parametrize("paper_id, table_id", CASES, ids=[f"{p}-table{t}" for p, t in CASES])
def test_targets_match_the_seed_text(paper_id, table_id):
    layout = LAYOUTS[(paper_id, table_id)]
    table = load(paper_id).table(table_id)
    parsed = parse(table_block(paper_id, layout), layout)
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

    # Each metric maps to a heading as printed.
    for metric in table.metrics.values():
        assert metric.column in parsed.all_cells, f"heading {metric.column!r} not in the table"
    if layout.transposed:
        # Lines are metrics, in the YAML's metric order; columns are rows, in the YAML's row order.
        assert [label for label, _ in parsed.lines] == [m.column for m in table.metrics.values()]
        assert parsed.header == [r.source_row for r in table.rows]
        for metric, (_, numbers) in zip(table.metrics, parsed.lines):
            assert len(numbers) == sum(metric in r.published for r in table.rows)


@pytestmark_seeds
@pytest.mark.parametrize("table_id", ["2", "8"])
def test_liu2020_sparsity_labels_are_row_specs(table_id):
    layout = LAYOUTS[("liu2020", table_id)]
    table = load("liu2020").table(table_id)
    parsed = parse(table_block("liu2020", layout), layout)
    assert [float(v) for v in parsed.labels] == [r.spec["model"]["block_args"]["sparsity"] for r in table.rows]


@pytestmark_seeds
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
