"""The dashboard under Streamlit's AppTest: every page renders on a missing, an empty, a filled and a corrupt
database, and shows the numbers `repro compare --format json` prints (the browser tests: test_dashboard_browser.py)."""
import json
import os
import socket
import sqlite3
import statistics
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from repro import results
from repro_dashboard import common

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
PAGES = ["overview", "table", "runs", "curves", "structure", "kernels"]


def render(page: str, db_url: str, monkeypatch, query: dict | None = None) -> AppTest:
    monkeypatch.setenv("REPRO_DB", db_url)
    app = AppTest.from_file(APP, default_timeout=300)
    if query:
        app.query_params.update(query)
    if page != "overview":
        app.switch_page(f"views/{page}.py")
    app.run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def texts(app: AppTest) -> str:
    return "\n".join([m.value for m in app.markdown] + [i.value for i in app.info] + [c.value for c in app.code]
                     + [c.value for c in app.caption])


@pytest.mark.parametrize("page", PAGES)
def test_a_missing_database_gives_each_page_an_empty_state_and_is_not_created(page, tmp_path, monkeypatch):
    path = tmp_path / "results.db"
    app = render(page, f"sqlite:///{path}", monkeypatch)
    assert not app.error
    shown = texts(app)
    if page != "overview":  # the overview still shows the published side
        assert "No results database at" in shown and ("make run" in shown or "repro " in shown)
    assert not path.exists()


@pytest.mark.parametrize("page", PAGES)
def test_an_empty_database_says_how_to_fill_it(page, tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    assert cli("compare", "--paper", "bulat2019", "--table", "1")[0] == 0  # creates the database, stores the targets
    app = render(page, f"sqlite:///{tmp_path / 'results.db'}", monkeypatch)
    assert not app.error
    shown = texts(app)
    assert any(hint in shown for hint in ("no runs yet: repro run --paper", "No runs in this database yet",
                                          "No kernel benchmarks stored yet", "--profile structure"))


@pytest.mark.parametrize("page", PAGES)
def test_a_corrupt_database_is_one_line_on_each_page(page, tmp_path, monkeypatch):
    path = tmp_path / "results.db"
    path.write_bytes(b"these are not the bytes of an SQLite file\n" * 50)
    app = render(page, f"sqlite:///{path}", monkeypatch)
    [error] = app.error
    assert error.value.startswith("repro: error: database file") and "not an SQLite database" in error.value
    assert "\n" not in error.value and "Traceback" not in error.value


def test_the_database_comes_from_the_command_line_or_repro_db(monkeypatch):
    monkeypatch.setenv("REPRO_DB", "sqlite:///from-env.db")
    assert common.options([]).db == "sqlite:///from-env.db"
    assert common.options(["--db", "postgresql+psycopg://u:secret@h/db"]).db == "postgresql+psycopg://u:secret@h/db"
    monkeypatch.delenv("REPRO_DB")
    assert common.options([]).db == "sqlite:///results.db"


# --- on a database filled by smoke and structure runs and a kernel benchmark (tests/conftest.py: filled_db) ---

def published_json(filled_db, *extra: str) -> dict:
    return json.loads(filled_db.repro("compare", "--paper", "bulat2019", "--table", "1", "--format", "json", *extra))


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_a_filled_database(page, filled_db, monkeypatch):
    app = render(page, filled_db.url, monkeypatch)
    assert not app.error


def test_the_table_page_shows_what_repro_compare_prints(filled_db, monkeypatch):
    app = render("table", filled_db.url, monkeypatch, {"paper": "bulat2019", "table": "1"})
    expected = published_json(filled_db)
    shown = app.dataframe[0].value
    columns = ["row", "metric", "published", "reproduced", "std", "n", "profile"]
    assert "delta" not in shown and all(cell["delta"] is None for cell in expected["cells"])  # smoke: claims only
    page_cells = [{c: (None if isinstance(v, float) and v != v else v) for c, v in zip(columns, values)}
                  for values in shown[columns].itertuples(index=False)]
    assert page_cells == [{c: cell[c] for c in columns} for cell in expected["cells"]]
    assert any(c["profile"] == "smoke" and c["n"] == 2 for c in page_cells)
    lines = [m.value for m in app.markdown]
    for claim in expected["claims"]:
        assert any(line.endswith(f"[{claim['verdict']}] {claim['text']} (`{claim['metric']}`)") for line in lines), claim
    assumptions = app.dataframe[-1].value
    assert "smoke: a tiny synthetic run that checks the pipeline, not the method" in set(assumptions["assumption"])


def test_a_number_to_number_cell_shows_its_delta_and_band(filled_db, monkeypatch):
    app = render("table", filled_db.url, monkeypatch, {"paper": "bulat2019", "table": "2"})
    expected = json.loads(filled_db.repro("compare", "--paper", "bulat2019", "--table", "2", "--format", "json"))
    [cell] = [c for c in expected["cells"] if c["profile"] == "structure"]
    shown = app.dataframe[0].value
    mine = shown[shown["profile"] == "structure"].iloc[0]
    assert (mine["row"], mine["metric"], mine["n"]) == ("ref4_1stack", "params_m", 1)
    assert (mine["reproduced"], mine["delta"], mine["delta_pct"]) == (cell["reproduced"], cell["delta"], cell["delta_pct"])
    assert mine["delta_band"] == results.delta_band(cell["delta"], None, cell["published"]) != ""


def test_delta_bands():
    assert results.delta_band(0.5, 1.0, 80.0) == "within 1 std" and results.delta_band(-1.5, 1.0, 80.0) == "1-2 std"
    assert results.delta_band(3.0, 1.0, 80.0) == "over 2 std"
    assert results.delta_band(0.06, None, 6.2) == "within 1%" and results.delta_band(-0.2, None, 6.2) == "1-5%"
    assert results.delta_band(0.4, 0.0, 6.2) == "over 5%" and results.delta_band(None, 1.0, 6.2) == ""


def test_the_overview_counts_what_the_comparison_holds(filled_db, monkeypatch):
    app = render("overview", filled_db.url, monkeypatch)
    grid = app.dataframe[0].value
    mine = grid[(grid["paper"] == "bulat2019") & (grid["table"] == "1")].iloc[0]
    expected = published_json(filled_db)
    assert mine["published cells"] == 8
    assert mine["reproduced smoke"] == sum(1 for c in expected["cells"] if c["profile"] == "smoke")
    for verdict in ("holds", "fails", "inconclusive"):
        assert mine[verdict] == sum(1 for c in expected["claims"] if c["verdict"] == verdict)
    assert mine["runs finished"] == 9  # 3 rows x 2 seeds smoke + 3 structure
    table2 = grid[(grid["paper"] == "bulat2019") & (grid["table"] == "2")].iloc[0]
    assert table2["cells compared"] == 1 and table2["reproduced structure"] == 1  # ref4_1stack's params_m
    assert "claims tested" in texts(app)


def test_the_runs_page_lists_and_filters_the_runs(filled_db, monkeypatch):
    app = render("runs", filled_db.url, monkeypatch)
    assert len(app.dataframe[0].value) == 10
    app.multiselect(key="runs-profile").set_value(["structure"]).run()
    runs = app.dataframe[0].value
    assert len(runs) == 4 and set(runs["profile"]) == {"structure"} and set(runs["status"]) == {"finished"}
    app.multiselect(key="runs-table").set_value(["2"]).run()
    assert list(app.dataframe[0].value["row"]) == ["ref4_1stack"]
    assert all(link.startswith("http://127.0.0.1:5000/#/experiments/") for link in runs["mlflow"])


def test_the_curves_page_bands_the_seeds(filled_db, monkeypatch):
    app = render("curves", filled_db.url, monkeypatch, {"paper": "bulat2019", "table": "1"})
    assert app.get("vega_lite_chart") or app.get("arrow_vega_lite_chart")
    band = app.dataframe[0].value
    con = sqlite3.connect(filled_db.folder / "results.db")
    values = [v for (v,) in con.execute(
        "select m.value from metrics m join runs r on r.id = m.run_pk where r.row_id = 'baseline' and r.profile = 'smoke' "
        "and m.name = 'pckh_total' and m.step = 1")]
    first = band[(band["row"] == "baseline") & (band["step"] == 1)].iloc[0]
    assert len(values) == 2 and first["n"] == 2
    assert first["mean"] == pytest.approx(statistics.fmean(values)) and first["std"] == pytest.approx(statistics.stdev(values))


def test_the_structure_page_shows_the_measured_models(filled_db, monkeypatch):
    app = render("structure", filled_db.url, monkeypatch, {"paper": "bulat2019", "table": "1"})
    wide = app.dataframe[0].value.set_index("row")
    con = sqlite3.connect(filled_db.folder / "results.db")
    stored = dict(con.execute("select r.row_id, m.value from metrics m join runs r on r.id = m.run_pk "
                              "where r.profile = 'structure' and r.table_id = '1' and m.name = 'size_packed_mb' and m.step is null"))
    assert set(stored) == {"baseline", "relu", "real"}
    for row, value in stored.items():
        assert wide.loc[row, "size_packed_mb"] == value
    sizes = app.dataframe[1].value.set_index("row")
    assert sizes.loc["real", "smaller"] == pytest.approx(1.0) and sizes.loc["baseline", "smaller"] > 10


def test_the_kernels_page_shows_the_stored_benchmarks_and_the_papers_claims(filled_db, monkeypatch):
    app = render("kernels", filled_db.url, monkeypatch)
    bench = app.dataframe[0].value
    stored = json.loads(filled_db.repro("kernels", "show", "--format", "json"))
    assert sorted(bench["ratio"]) == sorted(r["ratio"] for r in stored) and set(bench["name"]) == {"square 1024"}
    claims = app.dataframe[-1].value
    from repro.plugins import discover
    assert len(claims) == sum(len(p.efficiency_claims) for p in discover().values())
    assert app.get("vega_lite_chart") or app.get("arrow_vega_lite_chart")


def test_the_render_benchmark_prints_its_figures(capsys, monkeypatch):
    from repro_dashboard import bench

    monkeypatch.delenv("REPRO_DB", raising=False)
    bench.main(["--runs", "40", "--renders", "1", "--format", "json"])
    assert "REPRO_DB" not in os.environ  # its temporary database is not left to what runs next
    result = json.loads(capsys.readouterr().out)
    assert result["runs"] == 40 and result["tables"] == 27 and result["renders"] == 1
    assert result["first_render_s"] > 0 and result["render_s_median"] > 0 and result["cpu"]


# --- PostgreSQL (a real server: jobs/testbed/postgres.sh) ---

def test_every_page_on_postgresql_shows_what_repro_compare_prints(fresh_postgres_db, monkeypatch, tmp_path, cli):
    monkeypatch.chdir(tmp_path)
    for var in ("REPRO_HOME", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    code, _, err = cli("run", "--paper", "bulat2019", "--table", "2", "--rows", "ref4_1stack,ref4_2stack", "--profile",
                       "structure", "--executor", "debug", "--quiet", "--db", fresh_postgres_db)
    assert code == 0, err
    code, out, _ = cli("compare", "--paper", "bulat2019", "--table", "2", "--format", "json", "--db", fresh_postgres_db)
    expected = [c for c in json.loads(out)["cells"] if c["profile"] == "structure"]
    assert len(expected) == 2
    for page in PAGES:
        app = render(page, fresh_postgres_db, monkeypatch, {"paper": "bulat2019", "table": "2"})
        assert not app.error, page
    app = render("table", fresh_postgres_db, monkeypatch, {"paper": "bulat2019", "table": "2"})
    shown = app.dataframe[0].value
    shown = shown[shown["profile"] == "structure"]
    assert list(shown["reproduced"]) == [c["reproduced"] for c in expected]
    assert list(shown["delta"]) == [c["delta"] for c in expected]


def test_a_server_that_does_not_answer_is_one_line_without_its_password(monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = render("runs", f"postgresql+psycopg://someone:s3cret@127.0.0.1:{port}/results", monkeypatch)
    [error] = app.error
    assert error.value.startswith("repro: error: database 'postgresql+psycopg://someone:***@127.0.0.1") and "\n" not in error.value
    assert "s3cret" not in error.value and "start the server or check the URL" in error.value
