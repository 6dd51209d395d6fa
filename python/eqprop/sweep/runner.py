"""Run a sweep on Dask distributed: a local cluster or an existing one, progress, the final report.

The sweep directory::

    DIR/sweep.json        the spec as read and the trials it expanded to (checked on every rerun)
    DIR/trials/<id>/      one run directory per trial (see :mod:`eqprop.sweep.trial`)
    DIR/summary.csv, summary.md, sweep.png    written when the sweep ends (see :mod:`eqprop.sweep.report`)

Fault tolerance comes from two places. The trials' state lives on disk, so a
rerun of the same command skips finished (and failed) trials and resumes the
unfinished ones from their checkpoints. And Dask reschedules the task of a
worker that dies on another worker (up to ``distributed.scheduler.allowed-failures``
deaths, 3 by default); that retry finds the trial's checkpoint and resumes from it.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eqprop.sweep import report
from eqprop.sweep.settings import SpecError
from eqprop.sweep.spec import SweepSpec, Trial
from eqprop.sweep.trial import DONE, FAILED, FAILED_NAME, STARTED, read_outcome, run_trial, trial_state

SWEEP_NAME = "sweep.json"
TRIALS_DIR = "trials"


def _format_error(error: float | None) -> str:
    return "-" if error is None else f"{100 * error:.2f}%"


def prepare_directory(spec: SweepSpec, out: Path) -> None:
    """Create ``out`` for ``spec``, or check that it already holds this very sweep."""
    from eqprop.checkpoint import atomic_write_json

    path = out / SWEEP_NAME
    record = {"name": spec.name, "spec": spec.source, "trials": spec.trials_record()}
    if path.is_file():
        existing = json.loads(path.read_text(encoding="utf-8"))
        if existing.get("trials") != json.loads(json.dumps(record["trials"])):
            raise SpecError(
                f"{out} holds a different sweep (its trials differ from this spec's); rerun with the spec "
                f"it was started with, or choose another --out"
            )
        return
    if out.exists() and any(out.iterdir()):
        raise SpecError(f"{out} exists and is not a sweep directory (no {SWEEP_NAME}); choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, record)


def trial_dir(out: Path, trial: Trial) -> Path:
    return out.resolve() / TRIALS_DIR / trial.id


def default_workers(trial_threads: int) -> int:
    """One worker per ``trial_threads`` cores (at least one)."""
    return max(1, (os.cpu_count() or 1) // trial_threads)


def start_local_cluster(n_workers: int, trial_threads: int):
    """A LocalCluster of ``n_workers`` single-threaded worker processes (each trial uses ``trial_threads``).

    Worker saturation 1.0 keeps every queued trial on the scheduler until a
    worker is free, so "running" means running and a dead worker loses only
    the trial it was running.
    """
    import logging

    import dask
    from distributed import LocalCluster

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    environ.update(OMP_NUM_THREADS=trial_threads, OPENBLAS_NUM_THREADS=1, MKL_NUM_THREADS=1)
    with dask.config.set({
        "distributed.scheduler.worker-saturation": 1.0,
        "distributed.nanny.pre-spawn-environ": environ,
    }):
        return LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
            silence_logs=logging.ERROR,
        )


class Progress:
    """Counts of the sweep's trials and the best so far, printed as one line."""

    def __init__(self, spec: SweepSpec, outcomes: dict[str, dict[str, Any]], echo: Callable[[str], None]) -> None:
        self.spec = spec
        self.outcomes = outcomes
        self.echo = echo
        self.started = time.perf_counter()

    def best(self) -> tuple[str, dict[str, Any]] | None:
        done = [(tid, o) for tid, o in self.outcomes.items() if o["status"] == DONE and o.get("val_error") is not None]
        return min(done, key=lambda item: (item[1]["val_error"], item[0])) if done else None

    def line(self, running: int, waiting: int) -> str:
        done = sum(o["status"] == DONE for o in self.outcomes.values())
        failed = sum(o["status"] == FAILED for o in self.outcomes.values())
        text = (f"[{time.perf_counter() - self.started:7.1f} s] {done + failed}/{len(self.spec.trials)} finished: "
                f"{done} done, {failed} failed, {running} running, {waiting} waiting")
        best = self.best()
        if best is not None:
            trial = next(t for t in self.spec.trials if t.id == best[0])
            text += f"; best val {_format_error(best[1]['val_error'])} {trial.id} ({trial.label()})"
        return text


def run_sweep(
    spec: SweepSpec,
    out: str | os.PathLike,
    *,
    scheduler: str | None = None,
    client: Any = None,
    workers: int | None = None,
    trial_threads: int = 1,
    retry_failed: bool = False,
    progress_every: float = 10.0,
    echo: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Run every unfinished trial of ``spec`` with its run directory under ``out/trials``.

    Parameters
    ----------
    spec : SweepSpec
        From :func:`eqprop.sweep.load_spec`.
    out : path
        The sweep directory (created, or reused when it holds this sweep).
    scheduler : str, optional
        Address of a running Dask scheduler, e.g. ``tcp://10.0.0.5:8786``.
        Default: a local cluster of ``workers`` processes.
    client : distributed.Client, optional
        An existing client to submit to (takes precedence over ``scheduler``).
    workers : int, optional
        Workers of the local cluster; default: cores // trial_threads.
    trial_threads : int, default 1
        OpenMP threads per trial (``eqprop train --threads``).
    retry_failed : bool, default False
        Run failed trials again (resuming from their last checkpoint, if any).
    progress_every : float, default 10
        Seconds between two progress lines while nothing finishes.
    echo : callable, default print
        Where progress lines go.

    Returns
    -------
    list of dict
        The summary table's rows, best first (see :func:`eqprop.sweep.report.table_rows`).
    """
    out = Path(out)
    if isinstance(trial_threads, bool) or not isinstance(trial_threads, int) or trial_threads < 1:
        raise ValueError(f"trial_threads must be a positive integer; got {trial_threads!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive integer; got {workers!r}")
    prepare_directory(spec, out)
    outcomes: dict[str, dict[str, Any]] = {}
    pending: list[Trial] = []
    resumed = 0
    for trial in spec.trials:
        run_dir = trial_dir(out, trial)
        state = trial_state(run_dir)
        if state == FAILED and retry_failed:
            (run_dir / FAILED_NAME).unlink()
            state = trial_state(run_dir)
        if state in (DONE, FAILED):
            outcomes[trial.id] = read_outcome(run_dir)
            continue
        resumed += state == STARTED
        outcomes[trial.id] = {"status": state}
        pending.append(trial)
    progress = Progress(spec, outcomes, echo)
    skipped = len(spec.trials) - len(pending)
    echo(f"sweep {spec.name}: {len(spec.trials)} trials in {out}; {skipped} already finished, "
         f"{resumed} to resume from their checkpoints, {len(pending) - resumed} to start")
    if pending:
        _run_pending(spec, out, pending, outcomes, progress, scheduler=scheduler, client=client,
                     workers=workers, trial_threads=trial_threads, progress_every=progress_every, echo=echo)
    return finish(spec, out, outcomes, echo)


def _run_pending(spec, out, pending, outcomes, progress, *, scheduler, client, workers, trial_threads,
                 progress_every, echo) -> None:
    from distributed import Client

    cluster = None
    own_client = client is None
    if client is None:
        if scheduler is not None:
            client = Client(scheduler)
            where = f"the cluster at {scheduler}"
        else:
            n_workers = workers or default_workers(trial_threads)
            cluster = start_local_cluster(n_workers, trial_threads)
            client = Client(cluster)
            where = f"a local cluster of {n_workers} worker(s)"
        echo(f"running {len(pending)} trial(s) on {where}, {trial_threads} thread(s) per trial")
    tag = uuid.uuid4().hex[:8]
    futures = {}
    try:
        for trial in pending:
            future = client.submit(
                run_trial, str(trial_dir(out, trial)), trial.argv, trial_threads,
                key=f"eqprop-{trial.id}-{tag}", pure=False,
            )
            futures[future.key] = (trial, future)
        last_line = ""
        last_print = last_check = 0.0
        while futures:
            finished = [key for key, (_, future) in futures.items() if future.done()]
            for key in finished:
                trial, future = futures.pop(key)
                outcomes[trial.id] = _outcome(future, trial, out)
                outcome = outcomes[trial.id]
                if outcome["status"] == DONE:
                    echo(f"done   {trial.id} ({trial.label()}): val {_format_error(outcome.get('val_error'))}, "
                         f"test {_format_error(outcome.get('test_error'))}")
                else:
                    echo(f"FAILED {trial.id} ({trial.label()}): {outcome.get('message', '')}")
            now = time.perf_counter()
            if finished or now - last_check >= 1.0:  # ask the workers at most once a second
                running, last_check = _running(client, futures), now
                line = progress.line(running, len(futures) - running)
                counts = line.split("] ", 1)[1]
                if finished or counts != last_line or now - last_print >= progress_every:
                    echo(line)
                    last_line, last_print = counts, now
            if futures:
                time.sleep(0.2)
    except KeyboardInterrupt:
        for _, future in futures.values():
            future.cancel()
        echo(f"interrupted; rerun the same command to continue (finished trials are kept in {out})")
        raise
    finally:
        if own_client:
            client.close()
        if cluster is not None:
            cluster.close()


def _executing(dask_worker) -> list[str]:
    """Keys of the tasks a worker is executing now (run on each worker by :func:`_running`)."""
    return [str(task.key) for task in getattr(dask_worker.state, "executing", ())]


def _running(client, futures) -> int:
    """How many of the sweep's trials the workers are executing now."""
    try:
        executing = client.run(_executing, on_error="return")
    except Exception:  # noqa: BLE001 - a progress line is not worth failing the sweep for
        return 0
    keys = {key for result in executing.values() if isinstance(result, list) for key in result}
    return sum(str(key) in keys for key in futures)


def _outcome(future, trial: Trial, out: Path) -> dict[str, Any]:
    """The trial's outcome; a task that could not complete (workers kept dying) is a failed trial."""
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - e.g. distributed.KilledWorker
        from eqprop.checkpoint import atomic_write_json

        message = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        run_dir = trial_dir(out, trial)
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run_dir / FAILED_NAME, {"message": message, "exit_code": None})
        return read_outcome(run_dir)


def finish(spec: SweepSpec, out: Path, outcomes: dict[str, dict[str, Any]], echo) -> list[dict[str, Any]]:
    """Write the summary table and plot; print the best trials."""
    rows = report.table_rows(spec, outcomes)
    csv_path, md_path = report.write_tables(out, rows)
    plot = report.plot_sweep(out, spec, rows)
    done = [row for row in rows if row["status"] == DONE]
    failed = [row for row in rows if row["status"] == FAILED]
    echo(f"sweep {spec.name} finished: {len(done)} done, {len(failed)} failed of {len(spec.trials)} trials")
    by_id = {t.id: t for t in spec.trials}
    for row in done[:5]:
        echo(f"  {row['rank']:>3}. {row['trial']} val {_format_error(row['val_error'])} "
             f"test {_format_error(row['test_error'])}  {by_id[row['trial']].label()}")
    echo(f"wrote {csv_path}, {md_path}" + (f", {plot}" if plot else ""))
    return rows

