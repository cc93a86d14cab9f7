"""32 job processes writing runs and per-epoch metrics at once lose and duplicate no rows and
claim no run twice, on SQLite and on a real PostgreSQL server (`repro db stress`)."""
import json

from repro.cli import main


def stress(capsys, url):
    code = main(["db", "stress", "--writers", "32", "--runs", "64", "--epochs", "10", "--db", url, "--format", "json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0, result
    assert result["runs_stored"] == result["runs_finished"] == result["claims"] == 64
    assert result["lost"] == result["duplicated"] == result["claimed_twice"] == result["failed_writers"] == 0
    assert result["metric_rows"] == result["metric_rows_expected"] == 64 * 11 * 3
    return result


def test_32_writers_on_sqlite(workdir, capsys):
    stress(capsys, f"sqlite:///{workdir / 'results.db'}")


def test_32_writers_on_postgresql(fresh_postgres_db, capsys):
    stress(capsys, fresh_postgres_db)
