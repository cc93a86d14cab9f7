"""The job: claim one run, train (or measure) it, record it; stop cleanly when asked.

A run is claimed atomically when its job starts (a run is never trained twice at once). Training
goes on in a worker thread while the job's main thread waits and handles signals: SIGTERM or
SIGINT (a cancelled job, ``scontrol requeue``, a killed CLI) asks the loop to stop at the next
batch, save a checkpoint there and record the run as interrupted; the next ``repro run`` (or
the cluster's requeue) resumes it exactly. ``RunJob`` is checkpointable in submitit's sense: on
the signal submitit handles before a time limit or a preemption, :meth:`RunJob.checkpoint` stops
the run the same way and submitit requeues the job, which resumes it.
"""
from __future__ import annotations

import os
import signal
import threading
import time
import traceback

import submitit

from .paths import CONFIG_FILE, FINAL_MODEL, run_dir
from .profiles import get_profile


class RunJob(submitit.helpers.Checkpointable):
    """``RunJob()(run_hash, db_url, experiment, executor_name, threads, echo_progress)``: never
    raises (a debug executor would open pdb); returns the outcome as a dict."""

    def __init__(self) -> None:
        self._worker: threading.Thread | None = None
        self._requeued = False

    def __call__(self, run_hash: str, db_url: str | None, experiment: str, executor_name: str,
                 threads: int | None = None, echo_progress: bool = True) -> dict:
        from .train import STOP

        STOP.clear()
        self._requeued = False
        outcome: dict = {}
        self._worker = threading.Thread(target=lambda: outcome.update(
            self._run(run_hash, db_url, experiment, executor_name, threads, echo_progress)), name="repro-run")
        in_main = threading.current_thread() is threading.main_thread()
        handlers = {sig: signal.signal(sig, _ask_stop) for sig in (signal.SIGTERM, signal.SIGINT)} if in_main else {}
        try:
            self._worker.start()
            while self._worker.is_alive():
                self._worker.join(0.2)  # short waits: signals are handled between them
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        return outcome

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """Called by submitit before a time limit or on preemption: stop at the next batch, save,
        and hand submitit the same call to requeue."""
        from .train import STOP

        self._requeued = True
        STOP.set()
        if self._worker is not None:
            self._worker.join()
        return submitit.helpers.DelayedSubmission(RunJob(), *args, **kwargs)

    def _run(self, run_hash: str, db_url: str | None, experiment: str, executor_name: str,
             threads: int | None, echo_progress: bool) -> dict:
        from .plugins import discover
        from .recorder import Recorder, Taken
        from .train import Diverged, Interrupted, measure_run, train_run

        started = time.time()
        discover()  # a fresh job process: plugins register their blocks and recipes before any model is built
        recorder = Recorder(db_url, run_hash, experiment, executor_name, job_id(executor_name))
        status, error, final = "failed", None, {}
        try:
            config = recorder.start()
            if get_profile(config["run"]["profile"]).trains:
                folder = run_dir(run_hash)
                final = train_run(config, folder, recorder.log, progress=_print if echo_progress else None, threads=threads)
                recorder.artifacts([folder / CONFIG_FILE, folder / FINAL_MODEL])
            else:
                final = measure_run(config)
                recorder.log(final)
            status = "finished"
        except Taken as exc:
            return {"status": "taken", "error": str(exc), "metrics": {}, "duration_s": 0.0}
        except Interrupted as exc:
            status, error = ("requeued" if self._requeued else "interrupted"), str(exc)
            if echo_progress:
                _print(f"{status}: {exc}")
        except Diverged as exc:
            status, error = "diverged", str(exc)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-8)}"
        duration = recorder.finish(status, final, error, time.time() - started)
        return {"status": status, "error": error, "metrics": final, "duration_s": duration}


def _ask_stop(signum, frame) -> None:
    from .train import STOP

    STOP.set()


def job_id(executor_name: str) -> str:
    """The cluster's id of this job (``123_4`` for task 4 of array 123), the process id locally."""
    if executor_name == "local":
        return str(os.getpid())
    try:
        return str(submitit.JobEnvironment().job_id)
    except Exception:
        return f"inproc-{os.getpid()}"


def _print(line: str) -> None:
    print(line, flush=True)  # a local job's stdout is a file, read by the submitting process
