"""submitit's launchers (hydra/launcher=local|slurm) with one difference: a job whose process
ended without a result (SIGKILLed, OOM-killed, cancelled on Slurm) is a failed job of the sweep,
recorded as killed in its sweep_job.json, instead of an exception that ends the sweep before the
other jobs are waited for and before the sweep's summary (seidr/sweep_callback.py). Lives in
`hydra_plugins` because Hydra only instantiates launchers found there."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher
from omegaconf import OmegaConf, open_dict

from seidr.sweep_callback import STATUS_FILE, mark_ended

log = logging.getLogger(__name__)
# the launcher's keys that configure the executor itself, not the jobs' resources
_EXECUTOR_KEYS = {"max_num_timeout"}


class _ToleratesKilledJobs(BaseSubmititLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        assert self.config is not None and len(job_overrides) > 0
        executor_options = {f"{self._EXECUTOR}_{key}": value for key, value in self.params.items()
                            if key in _EXECUTOR_KEYS}
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, folder=self.params["submitit_folder"],
                                         **executor_options)
        queue_keys = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{
            (key if key in queue_keys else f"{self._EXECUTOR}_{key}"):
                OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
            for key, value in self.params.items() if key not in _EXECUTOR_KEYS | {"submitit_folder"}})
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            sweep_dir.chmod(int(str(self.config.hydra.sweep.mode), 8))
        log.info("Submitit '%s' sweep output dir : %s", self._EXECUTOR, sweep_dir)
        numbers = [initial_job_idx + offset for offset in range(len(job_overrides))]
        for number, overrides in zip(numbers, job_overrides):
            log.info("\t#%d : %s", number, " ".join(filter_overrides(overrides)))
        state = Singleton.get_state()
        jobs = executor.map_array(self, [list(o) for o in job_overrides], ["hydra.sweep.dir"] * len(numbers),
                                  numbers, [f"job_id_for_{n}" for n in numbers], [state] * len(numbers))
        return [self._result(job, number, overrides)
                for job, number, overrides in zip(jobs, numbers, job_overrides)]

    def _result(self, job: Any, number: int, overrides: Sequence[str]) -> JobReturn:
        """The job's JobReturn; for a job whose process left none, one worth NaN (what main.py
        returns for a failed job), its sweep_job.json saying why."""
        from submitit.core.utils import FailedJobError, UncompletedJobError

        try:
            return job.results()[0]
        except (UncompletedJobError, FailedJobError) as error:
            log_file = Path(str(job.paths.stderr))
            if isinstance(error, UncompletedJobError):
                status = "killed"
                reason = (f"killed: its process ended without a result (out of memory, cancelled, or a "
                          f"signal); submitit job {job.job_id}, log {log_file}")
            else:
                first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                status, reason = "failed", f"its process failed outside seidr ({first}); log {log_file}"
            mark_ended(self._status_path(number, overrides), number, list(filter_overrides(overrides)), status,
                       reason, self.config)
            failed = JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED)
            failed.return_value = math.nan
            return failed

    def _status_path(self, number: int, overrides: Sequence[str]) -> Path:
        """The job's sweep_job.json: where the job wrote it, else where its run folder would be."""
        assert self.config is not None and self.hydra_context is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        for path in sweep_dir.rglob(STATUS_FILE):
            if _number_in(path) == number:
                return path
        job_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(job_config.hydra.job):
            job_config.hydra.job.num = number
        return Path(str(job_config.hydra.sweep.dir)) / str(job_config.hydra.sweep.subdir) / STATUS_FILE


def _number_in(path: Path) -> int | None:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("number")
    except (OSError, ValueError, AttributeError):
        return None


class LocalLauncher(_ToleratesKilledJobs):
    _EXECUTOR = "local"


class SlurmLauncher(_ToleratesKilledJobs):
    _EXECUTOR = "slurm"
