import pytest


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A fresh working directory: results.db, mlflow.db and .repro/ land here."""
    monkeypatch.chdir(tmp_path)
    for var in ("REPRO_DB", "REPRO_HOME", "MLFLOW_TRACKING_URI", "REPRO_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("REPRO_THREADS", "2")
    return tmp_path
