"""How a `-m` sweep ends: every job leaves a small status file in its run folder (`sweep_job.json`:
its number, overrides, and whether it finished or why it failed), and once all jobs have had
their turn the sweep lists the failed ones and exits with status 2.

A file, not the jobs' return values, because only a file reaches the submitting process from
every launcher: the basic one runs jobs here, submitit's local and Slurm launchers run them in
other processes or on other machines (the run folders are on a shared file system). Registered
as a Hydra callback in conf/hydra/default.yaml, so it applies whatever the sweeper and launcher."""

from __future__ import annotations

import json
import math
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from seidr.atomic import write_text_atomic
from seidr.redact import Redactor

STATUS_FILE = "sweep_job.json"
LISTED = 20  # failed jobs named at the end of a sweep; the report lists all of them
WHY_CHARS = 200  # of a failed job's reason in that list


def mark_failed(output_dir: Path, error: str) -> None:
    """Record why a sweep job stopped (main.py, for the seidr error it printed); `error` must be
    masked already."""
    _update(output_dir / STATUS_FILE, status="failed", error=error)


def mark_ended(path: Path, number: int, overrides: list[str], status: str, reason: str,
               config: DictConfig) -> None:
    """Record that a sweep job's process ended without a result ("killed") or failed outside
    seidr ("failed"), for the launcher, which saw it; masked as the job itself masks its record."""
    # the launcher is an entry point, in the submitting process: it may read the environment's secrets
    redactor = Redactor.from_sources(config=config, environ=os.environ, overrides=overrides)
    path.parent.mkdir(parents=True, exist_ok=True)
    _update(path, number=number, overrides=redactor.message(" ".join(overrides)), status=status,
            error=redactor.message(reason))


class SweepFailures(Callback):
    """Writes each sweep job's status file and, at the end of the sweep, exits 2 listing the
    jobs that failed (a seidr error, an unexpected exception, or a job that never ended)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # the sweep's config is composed: as in a job, HydraConfig holds it, so main.py tells a
        # failure after this point (exit 1) from Hydra refusing the command line (exit 2)
        HydraConfig.instance().set_config(config)
        # a fixed sweep folder (an experiment) is run again to resume: earlier runs' verdicts
        # are stale, every job of this run writes its own
        for stale in Path(str(config.hydra.sweep.dir)).rglob(STATUS_FILE):
            stale.unlink(missing_ok=True)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if _sweeping(config):
            task = OmegaConf.to_container(config.hydra.overrides.task)
            overrides = _redactor(config).message(" ".join(task))
            status = {"number": int(config.hydra.job.num), "overrides": overrides, "status": "running"}
            write_text_atomic(_status_path(), json.dumps(status, indent=2) + "\n")

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if not _sweeping(config):
            return
        path = _status_path()
        if job_return.status == JobStatus.FAILED:
            # an exception seidr did not turn into a clear error: its traceback goes to the
            # status file, the console gets one line, and the job counts as failed instead of
            # ending the sweep (the basic sweeper re-raises a failed job's exception)
            error = job_return._return_value  # the exception (the public property re-raises it)
            redactor = _redactor(config)
            message = redactor.message(f"{type(error).__name__}: {error}".strip().splitlines()[0])
            _update(path, status="failed", error=message, traceback=redactor.message(
                "".join(traceback.format_exception(error))))
            print(f"seidr: error: job {config.hydra.job.num} stopped on an unexpected error ({message}); "
                  f"its traceback is in {path}", file=sys.stderr)
            job_return.status = JobStatus.COMPLETED
            job_return.return_value = float("nan")
        elif _is_nan(job_return.return_value):
            _update(path, status="failed")
        else:
            _update(path, status="finished")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        jobs = sorted((_read(path) for path in sweep_dir.rglob(STATUS_FILE)),
                      key=lambda job: job.get("number", -1))
        failed = [job for job in jobs if job.get("status") != "finished"]
        solved = sum(_solved(path) for path in sweep_dir.rglob(STATUS_FILE))
        print(f"seidr: sweep of {len(jobs)} job{'s' if len(jobs) != 1 else ''}: {solved} solved, "
              f"{len(jobs) - len(failed) - solved} not solved, {len(failed)} failed; "
              f"`python -m seidr.report {sweep_dir}` tabulates them")
        if not failed:
            return
        print(f"seidr: error: {len(failed)} of {len(jobs)} jobs failed (each printed its error; "
              f"`python -m seidr.report {sweep_dir}` lists them):", file=sys.stderr)
        for job in failed[:LISTED]:
            why = job.get("error") or ("did not end (killed?)" if job.get("status") == "running"
                                       else "stopped on an error (see its log)")
            # the whole reason is in the job's own output and its status file
            why = why if len(why) <= WHY_CHARS else why[:WHY_CHARS - 1] + "…"
            print(f"  job {job.get('number', '?')} ({job.get('overrides', '')}): {why}", file=sys.stderr)
        if len(failed) > LISTED:
            print(f"  ... and {len(failed) - LISTED} more", file=sys.stderr)
        # after every job has had its turn: the sweep as a whole is not complete
        raise SystemExit(2)


def _sweeping(config: DictConfig) -> bool:
    return OmegaConf.select(config, "hydra.mode") == RunMode.MULTIRUN


def _status_path() -> Path:
    return Path(HydraConfig.get().runtime.output_dir) / STATUS_FILE


def _redactor(config: DictConfig) -> Redactor:
    # a callback is an entry point (it runs before and after main.py's job): it may read the
    # environment's secrets, like main.py does
    return Redactor.from_sources(config=config, environ=os.environ,
                                 overrides=OmegaConf.to_container(config.hydra.overrides.task))


def _solved(status_path: Path) -> bool:
    """Whether the job beside this status file finished with a solve (its result.json says so)."""
    status = _read(status_path)
    if status.get("status") != "finished":
        return False
    try:
        return json.loads((status_path.parent / "result.json").read_text(encoding="utf-8")).get("solved") is True
    except (OSError, ValueError, AttributeError):
        return False


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _read(path: Path) -> dict[str, Any]:
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        status = None
    return status if isinstance(status, dict) else {"overrides": str(path.parent), "status": "running"}


def _update(path: Path, **fields: Any) -> None:
    status = _read(path) if path.is_file() else {}
    if status.get("error") and "error" not in fields:
        fields = {**fields, "error": status["error"]}  # main.py's reason stays
    write_text_atomic(path, json.dumps({**status, **fields}, indent=2) + "\n")
