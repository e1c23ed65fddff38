"""seidr's entry point: `python main.py [group=option ...] [key=value ...]` runs one problem;
`python main.py -m ...` sweeps. See conf/config.yaml for the groups."""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from seidr.config import CONFIG_DIR, REPO_ROOT, register_resolvers
from seidr.config_keys import check_overrides
from seidr.errors import SeidrError
from seidr.redact import Redactor, install_log_redaction, is_secret_name
from seidr.tracking.jobfolder import JobFolder, write_hydra_files

register_resolvers()
log = logging.getLogger("seidr")
FAILED_JOB = float("nan")  # a sweep job's return value when it stopped on an error
# a log record for main.log only: the console already has the line as `seidr: ...`
LOG_FILE_ONLY = {"console": False}


def console_skips_file_only_records() -> None:
    """Keep LOG_FILE_ONLY records off the console handlers Hydra set up (files still get them)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.addFilter(lambda record: getattr(record, "console", True))


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    console_skips_file_only_records()
    redactor = protect_job(cfg, output_dir)
    folder = JobFolder(output_dir,
                       lambda: write_hydra_files(output_dir, HydraConfig.instance().cfg, cfg, redactor))
    try:
        return run(cfg, output_dir, redactor, folder)
    finally:
        folder.close()  # whatever ended the job, the log lines it held go to main.log


def run(cfg: DictConfig, output_dir: Path, redactor: Redactor, folder: JobFolder) -> float:
    """Run the job; print its one-line summary, or one line saying why it stopped."""
    from seidr.app import run_job  # after Hydra parsed the command line, so --help stays fast
    from seidr.tracking.results import RunRefused

    stop_on_signals()
    try:
        result = asyncio.run(run_job(cfg, output_dir, redactor, on_claim=folder.claim)).result
    except SeidrError as error:
        if isinstance(error, RunRefused):
            folder.refused()  # the folder stays as the job that owns it left it
        else:
            log.error("%s", error, extra=LOG_FILE_ONLY)
            folder.ended(remove_below=_runs_root(cfg))
        print(f"seidr: error: {redactor.message(str(error))}", file=sys.stderr)
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            # one bad job must not end a sweep, and under submitit an exit would leave the
            # launcher waiting for a result that never comes; the sweep reports failed jobs
            from seidr.sweep_callback import mark_failed

            mark_failed(output_dir, redactor.message(str(error).strip().splitlines()[0] if str(error).strip()
                                                     else type(error).__name__))
            return FAILED_JOB
        sys.exit(2)
    except KeyboardInterrupt as stop:
        # Ctrl-C, or SIGTERM / SIGHUP (a Slurm cancel or time limit, a closed terminal)
        signum = stop.signum if isinstance(stop, Stopped) else signal.SIGINT
        how = "interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
        kept = _kept(output_dir, resume_command(output_dir))
        log.warning("%s; %s", how, redactor.message(kept), extra=LOG_FILE_ONLY)
        print(redactor.message(f"seidr: {how}; {kept}"), file=sys.stderr)
        sys.exit(128 + signum)
    folder.claim()
    verdict = "solved" if result["solved"] else "not solved"
    line = (f"{result['dataset']}/{result['problem']}: {verdict} · validation score {result['val_score']:.3f} · "
            f"test pass rate {_rate(result['test_pass_rate'])} · {result['programs']} programs · "
            f"{result['llm_calls']} LLM calls ({result['cache_hits']} cached) · "
            f"{result['prompt_tokens'] + result['completion_tokens']} tokens{_cost(result['cost_usd'])} · {result['wall_s']:.1f} s → {output_dir}/result.json")
    print(redactor.text(line))
    return float(result["val_score"])


def _runs_root(cfg: DictConfig) -> Path | None:
    """Below which an unclaimed run folder's empty parents are removed: the outputs folder of a
    single run (a sweep's folders are the sweep's)."""
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        return None
    return Path(str(cfg.paths.output_root)).expanduser().absolute()


def protect_job(cfg: DictConfig, output_dir: Path) -> Redactor:
    """The job's redactor (its config's secrets and the environment's), set on every log record,
    and the files Hydra wrote before the job started (.hydra/*.yaml, a sweep's multirun.yaml and
    job list) rewritten with the secrets masked: an override like model.api_key=... is in them."""
    run = HydraConfig.get()
    redactor = Redactor.from_sources(config=cfg, environ=os.environ,
                                     overrides=[*sys.argv[1:], *run.overrides.task])
    install_log_redaction(redactor)
    names = ("config.yaml", "hydra.yaml", "overrides.yaml")
    written = [output_dir / run.output_subdir / name for name in names] if run.output_subdir else []
    if run.mode == RunMode.MULTIRUN:
        written += [Path(run.sweep.dir) / name for name in ("multirun.yaml", "sweep_jobs.json")]
    for path in written:
        redactor.rewrite_file(path)
    return redactor


class Stopped(KeyboardInterrupt):
    """The job was sent SIGTERM or SIGHUP: it ends as on Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def stop_on_signals() -> None:
    """End the job on SIGTERM and SIGHUP as on Ctrl-C (what was kept, how to resume). A signal
    someone else handles already (submitit's requeue, nohup's ignored SIGHUP) is left to them."""
    def stop(signum: int, _frame: object) -> None:
        raise Stopped(signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) == signal.SIG_DFL:
            signal.signal(signum, stop)


def resume_command(output_dir: Path) -> str:
    """The command that resumes this job: this command line in its folder. An override of a
    secret (model.api_key=...) is left out, to be given again (or set in the environment)."""
    run = HydraConfig.get()
    given = [*run.overrides.task, *(o for o in run.overrides.hydra if not o.startswith(("hydra.run.dir=",
                                                                                         "hydra.mode=")))]
    kept = [o for o in given if not is_secret_name(o.split("=", 1)[0])]
    command = shlex.join([sys.executable, str(Path(sys.argv[0]).absolute()), *kept,
                          f"hydra.run.dir={output_dir}"])
    left_out = [o.split("=", 1)[0] for o in given if o not in kept]
    return command + (f"  (add {' and '.join(left_out)} again, or set it in the environment: it is not shown)"
                      if left_out else "")


def _kept(output_dir: Path, resume: str) -> str:
    """What an interrupted job leaves in its folder, and how to go on from it."""
    try:
        count = (output_dir / "programs.jsonl").read_bytes().count(b"\n")
    except OSError:
        count = 0
    if count == 0:
        return f"no program was recorded yet in {output_dir}"
    return (f"{count} program{'s' if count != 1 else ''} kept in {output_dir / 'programs.jsonl'}; "
            f"to resume, run: {resume}")


def _cost(value: float | None) -> str:
    return "" if value is None else f" · ${value:.4f}"


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    # before Hydra: its own log lines (a sweep's job list) may quote model.api_key=... from argv
    install_log_redaction(Redactor.from_sources(environ=os.environ, overrides=sys.argv[1:]))
    # a log file on a full disk must not print a traceback per record over the one line that says why
    logging.raiseExceptions = False
    # a misspelled key or group option: one line with the closest valid one, before Hydra composes
    if (refusal := check_overrides(sys.argv[1:], CONFIG_DIR, REPO_ROOT)) is not None:
        print(f"seidr: error: {refusal}", file=sys.stderr)
        sys.exit(2)
    try:
        main()
    except SystemExit as stop:
        # Hydra refused the command line or the config before composing it (its message is
        # printed; a composed one is in HydraConfig, see seidr.sweep_callback): a usage error, as
        # for any config error seidr finds
        if stop.code == 1 and not HydraConfig.initialized():
            sys.exit(2)
        raise
