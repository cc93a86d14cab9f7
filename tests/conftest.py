import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

# `make test` runs the suite on two pytest-xdist workers (one per core). Each worker then gets one
# thread (torch's, and the runs it starts), so that the two never oversubscribe the cores; the
# tests of a real service run in one worker, so the services start once (see below), and so do
# the tests of the session's filled database, which is then built once.
WORKER = os.environ.get("PYTEST_XDIST_WORKER")
GROUPS = {"services": {"slurm_cluster", "postgres_url"}, "filled_db": {"filled_db"}}


def pytest_configure(config):
    if WORKER:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        import torch
        torch.set_num_threads(1)


def pytest_itemcollected(item):  # marked as collected, before xdist reads the groups (pytest_collection_modifyitems)
    group = next((name for name, fixtures in GROUPS.items() if fixtures & set(getattr(item, "fixturenames", ()))), None)
    if group:
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A fresh working directory: results.db, mlflow.db and .repro/ land here."""
    monkeypatch.chdir(tmp_path)
    for var in ("REPRO_DB", "REPRO_HOME", "MLFLOW_TRACKING_URI", "REPRO_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("REPRO_THREADS", "1" if WORKER else "2")
    return tmp_path


@pytest.fixture
def cli(capsys):
    """``cli("run", "--paper", ...)`` -> (exit status, stdout, stderr) of the repro command, in this process."""
    from repro.cli import main

    def call(*argv: str) -> tuple[int, str, str]:
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse's own exits (--help, a bad choice)
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    return call


# --- Real services for the tests: a one-node SLURM cluster and a PostgreSQL server (jobs/testbed/README.md) ---
# Each starts once per test session, at the first test that asks for it, with the project's script, in a folder of its
# own (<repo>/.testbed/<service>-<pid>-<start time>), and stops at the session's end. A folder left by a session that
# died is stopped and removed before a new start. Where the machine cannot run a service (not root, not installed:
# the script exits 77), its tests skip with the script's reason; any other failure to start fails them, with the logs.

REPO = Path(__file__).resolve().parents[1]
TESTBED_SCRIPTS = REPO / "jobs" / "testbed"
CANNOT_RUN_HERE = 77  # the scripts' exit code for "this machine cannot run the service"


def _others_can_enter(path: Path) -> bool:
    """Whether every folder down to path lets other users through (the PostgreSQL server runs as user postgres)."""
    for folder in [path, *path.parents]:
        if folder.exists() and not folder.stat().st_mode & 0o001:
            return False
    return True


def _testbed_base() -> Path:
    """<repo>/.testbed, or a folder in the temp dir where that path is too long for unix sockets, private or read-only."""
    base = REPO / ".testbed"
    if len(str(base)) <= 30 and _others_can_enter(REPO):
        try:
            base.mkdir(mode=0o755, exist_ok=True)
            if os.access(base, os.W_OK):
                return base
        except OSError:
            pass
    base = Path(tempfile.gettempdir()) / f"bnn-testbed-{os.getuid()}-{hashlib.sha1(str(REPO).encode()).hexdigest()[:8]}"
    base.mkdir(mode=0o755, exist_ok=True)
    return base


def _start_time(pid: int) -> str | None:
    """The start time of process pid (clock ticks since boot), which names it uniquely; None if it is gone (or a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def _script(name: str, *args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(TESTBED_SCRIPTS / name), *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def _stop_stale(base: Path, service: str, script: str) -> None:
    """Stops and removes the folders of this service whose session is gone (crashed, killed)."""
    for folder in base.glob(f"{service}-*-*"):
        _, pid, started = folder.name.rsplit("-", 2)
        if pid.isdigit() and _start_time(int(pid)) == started:
            continue  # a session still running (another pytest): its service is its own
        _script(script, "stop", str(folder), timeout=120)
        shutil.rmtree(folder, ignore_errors=True)


def _stop_on_sigterm() -> None:
    """A SIGTERM (a CI timeout, `kill`) ends pytest as Ctrl-C does, so that the session's teardown stops the services."""
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            def interrupt(signum, frame):
                raise KeyboardInterrupt(f"signal {signum}")
            signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread
        pass


def _start_service(service: str, script: str):
    """Starts a service with its script; returns its folder and the KEY=VALUE lines it printed, or skips/fails."""
    if os.name != "posix" or shutil.which("bash") is None:
        pytest.skip(f"{service}: the testbed scripts need a POSIX machine with bash")
    base = _testbed_base()
    _stop_stale(base, service, script)
    folder = base / f"{service}-{os.getpid()}-{_start_time(os.getpid())}"
    _stop_on_sigterm()
    try:
        result = _script(script, "start", str(folder), timeout=300)
    except subprocess.TimeoutExpired:
        _script(script, "stop", str(folder), timeout=120)
        pytest.fail(f"{service}: jobs/testbed/{script} start took over 300 s; logs in {folder}")
    if result.returncode == CANNOT_RUN_HERE:
        shutil.rmtree(folder, ignore_errors=True)
        reason = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "the machine cannot run it"
        pytest.skip(f"{service} not started: {reason.removeprefix('testbed: ').removeprefix(f'{service}: ')}")
    if result.returncode != 0:
        pytest.fail(f"{service}: jobs/testbed/{script} start {folder} failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    values = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    return folder, values


def _stop_service(folder: Path, script: str) -> None:
    result = _script(script, "stop", str(folder), timeout=120)
    if result.returncode == 0:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class SlurmCluster:
    folder: Path           # its config, state and logs (slurmctld.log, slurmd.log, ...)
    env: dict[str, str]    # what SLURM's clients (sbatch, squeue, sacct; submitit) need: SLURM_CONF
    accounting: bool       # slurmdbd runs: sacct works, and submitit's job states are real
    partition: str = "debug"


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real one-node SLURM cluster on localhost (jobs/testbed/slurm.sh), for the whole session.

    Apply its env to the process (or use the slurm_env fixture) before calling sbatch, squeue or submitit."""
    folder, values = _start_service("slurm", "slurm.sh")
    try:
        yield SlurmCluster(folder=folder, env={"SLURM_CONF": values["SLURM_CONF"]},
                           accounting=values.get("TESTBED_SLURM_ACCOUNTING") == "1")
    finally:
        _stop_service(folder, "slurm.sh")


@pytest.fixture
def slurm_env(slurm_cluster, monkeypatch):
    """The SLURM cluster, with its env set in this process for the test (sbatch, squeue, submitit find it)."""
    for key, value in slurm_cluster.env.items():
        monkeypatch.setenv(key, value)
    return slurm_cluster


@pytest.fixture(scope="session")
def postgres_url():
    """URL of a database on a real PostgreSQL server (jobs/testbed/postgres.sh), for the whole session:
    postgresql+psycopg://postgres@127.0.0.1:PORT/repro_test. Tests that need a database of their own: fresh_postgres_db."""
    folder, values = _start_service("postgres", "postgres.sh")
    try:
        yield values["TESTBED_POSTGRES_URL"]
    finally:
        _stop_service(folder, "postgres.sh")


@pytest.fixture
def fresh_postgres_db(postgres_url):
    """URL of a new, empty database on the session's PostgreSQL server; dropped after the test."""
    psycopg = pytest.importorskip("psycopg", reason="psycopg not installed: pip install -e '.[test]'")
    server, _ = postgres_url.rsplit("/", 1)
    admin = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- A results database filled by real runs, for the dashboard's tests ---

@dataclass
class FilledDatabase:
    folder: Path
    url: str

    def repro(self, *argv: str) -> str:
        """stdout of the repro command run in this database's folder (as a user would)."""
        env = {k: v for k, v in os.environ.items() if k not in ("REPRO_DB", "REPRO_HOME", "MLFLOW_TRACKING_URI")}
        done = subprocess.run([sys.executable, "-m", "repro.cli", *argv], cwd=self.folder, env=env, capture_output=True,
                              text=True, timeout=900)
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture(scope="session")
def filled_db(tmp_path_factory) -> FilledDatabase:
    """bulat2019 Table 1, three rows, at the smoke profile (2 seeds, per-epoch curves) and the structure profile,
    one row of its Table 2 at the structure profile, and one CPU kernel benchmark shape: a results.db in a folder of
    its own."""
    folder = tmp_path_factory.mktemp("filled")
    filled = FilledDatabase(folder, f"sqlite:///{folder / 'results.db'}")
    rows = "baseline,relu,real"
    filled.repro("run", "--paper", "bulat2019", "--table", "1", "--rows", rows, "--profile", "smoke", "--seeds", "2", "--quiet")
    filled.repro("run", "--paper", "bulat2019", "--table", "1", "--rows", rows, "--profile", "structure", "--quiet")
    # a row whose published #params the structure profile compares number to number
    filled.repro("run", "--paper", "bulat2019", "--table", "2", "--rows", "ref4_1stack", "--profile", "structure", "--quiet")
    filled.repro("kernels", "bench", "--only", "square 1024", "--pairs", "1")
    return filled
