"""Every runnable row of every table runs at ``smoke`` through the CLI (one run a row, seed 0).

One test per table: the rows of a table share its data and teacher, as a user's
``repro run --paper P --table T --profile smoke`` would.
"""
import sqlite3

import pytest

from repro.cli import main
from repro.plugins import discover

TABLES = [(p.id, t.id) for p in discover().values() for t in p.tables.values() if any(r.runnable for r in t.rows)]


@pytest.mark.parametrize("paper, table_id", TABLES, ids=[f"{p}-table{t}" for p, t in TABLES])
def test_every_runnable_row_runs_at_smoke(workdir, capsys, paper, table_id):
    code = main(["run", "--paper", paper, "--table", table_id, "--profile", "smoke", "--executor", "debug"])
    out = capsys.readouterr().out
    assert code == 0, out
    table = discover()[paper].tables[table_id]
    runnable = {r.id for r in table.rows if r.runnable}
    con = sqlite3.connect(workdir / "results.db")
    runs = con.execute("select row_id, status from runs where paper_id = ? and table_id = ?", (paper, table_id)).fetchall()
    assert runnable <= {row for row, status in runs if status == "finished"}
    metric = next(iter(table.metrics))
    if not any(word in metric for word in ("params", "flops")):  # a structural column needs the structure profile
        finals = con.execute("select count(*) from metrics m join runs r on m.run_pk = r.id "
                             "where r.table_id = ? and r.paper_id = ? and m.step is null", (table_id, paper)).fetchone()[0]
        assert finals > 0


def test_every_table_is_listed():
    assert sum(len(p.tables) for p in discover().values()) == 27
