"""Plugin discovery and validation: a malformed paper.yaml names its file, field and problem."""
import textwrap

import pytest

from repro.errors import ReproError
from repro.plugins import discover, load_paper_file

GOOD = """
id: toy
title: A toy paper
year: 2020
tables:
  "1":
    caption: toy
    task: pose
    dataset: mpii
    metrics: {pckh_total: {column: PCKh}}
    rows:
      - {id: a, label: A, source_row: "A", published: {pckh_total: 70.0}}
      - {id: b, label: B, source_row: "B", published: {pckh_total: 60}}
    claims:
      - {id: c, text: a beats b, require: ["a > b"]}
"""


def write(tmp_path, text):
    path = tmp_path / "paper.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_good_file_loads(tmp_path):
    paper = load_paper_file(write(tmp_path, GOOD))
    table = paper.table("1")
    assert [r.id for r in table.rows] == ["a", "b"]
    assert table.rows[1].published == {"pckh_total": 60.0}
    assert table.claims[0].comparisons == (("a", ">", "b"),) and table.claims[0].margin is None
    nearly = load_paper_file(write(tmp_path, GOOD.replace('require: ["a > b"]', 'margin: 2, require: ["a ~ b"]')))
    assert nearly.table("1").claims[0].comparisons == (("a", "~", "b"),) and nearly.table("1").claims[0].margin == 2.0
    assert table.target_source(table.rows[0], "pckh_total") == "Table 1, row 'A', column 'PCKh'"


@pytest.mark.parametrize("change, field, problem", [
    (("title: A toy paper\n", ""), "title", "required field is missing"),
    (("year: 2020", "year: soon"), "year", "expected int"),
    (("published: {pckh_total: 60}", "published: {pck: 60}"), "tables.1.rows[1].published.pck", "unknown metric"),
    (("published: {pckh_total: 60}", "published: {pckh_total: high}"), "tables.1.rows[1].published.pckh_total", "expected a number"),
    (("{id: b, label: B", "{id: a, label: B"), "tables.1.rows[1].id", "duplicate row id"),
    (('["a > b"]', '["a beats b"]'), "tables.1.claims[0].require", "not of the form"),
    (('["a > b"]', '["a > z"]'), "tables.1.claims[0].require", "unknown row 'z'"),
    (('["a > b"]', '["a ~ b"]'), "tables.1.claims[0].margin", "needs a positive margin"),  # nearly the same: within what?
    (('require: ["a > b"]', 'margin: 1, require: ["a > b"]'), "tables.1.claims[0].margin", "only such a claim has one"),
    (("    caption: toy\n", ""), "tables.1.caption", "required field is missing"),
    (("id: toy", "id: Toy Paper"), "id", "lower-case"),
])
def test_malformed_file_names_file_field_problem(tmp_path, change, field, problem):
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ReproError) as err:
        load_paper_file(path)
    message = str(err.value)
    assert str(path) in message and field in message and problem in message
    assert "\n" not in message


def test_invalid_yaml_is_one_line(tmp_path):
    with pytest.raises(ReproError, match=r"paper.yaml: line \d+: not valid YAML"):
        load_paper_file(write(tmp_path, "id: [unclosed\n"))


def test_in_tree_plugins_are_discovered():
    papers = discover()
    assert {"bulat2017", "bulat2019"} <= set(papers)
    table = papers["bulat2019"].table("1")
    assert len(table.rows) == 8
    assert table.row("real").published["pckh_total"] == 85.6


def test_external_plugin_through_entry_point(tmp_path, monkeypatch):
    """A paper from another distribution, registered in the bnn_repro.papers group."""
    import importlib.metadata

    from repro import plugins

    package = tmp_path / "toypaper"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "paper.yaml").write_text(textwrap.dedent(GOOD))
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = importlib.metadata.EntryPoint(name="toy", value="toypaper", group=plugins.ENTRY_POINT_GROUP)
    monkeypatch.setattr(plugins.importlib.metadata, "entry_points",
                        lambda group: [entry] if group == plugins.ENTRY_POINT_GROUP else [])
    try:
        papers = plugins.discover(refresh=True)
        assert "toy" in papers and "bulat2019" in papers
        assert papers["toy"].table("1").row("a").published == {"pckh_total": 70.0}
    finally:
        monkeypatch.undo()
        plugins.discover(refresh=True)
