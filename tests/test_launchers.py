"""Sweeps through hydra-submitit-launcher: submitit's local processes, and a real one-node Slurm
cluster that scripts/slurm-up.sh brings up (as root). The jobs run the embedded model for real."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest
import yaml

from seidr.config import REPO_ROOT
from tests.ci import unavailable
from tests.daemons import Daemons
from tests.test_cli import run_main

pytestmark = pytest.mark.slow

# Both are answered by one greedy draft of the embedded model, so each job is one LLM call (~12 s)
PROBLEMS = ("fizz-buzz", "gcd")


@pytest.fixture
def cache_dir(compose_cfg) -> Path:
    """Where the embedded model is, passed to the jobs explicitly: a batch job's HOME and
    environment are the cluster's business, not ours."""
    return Path(str(compose_cfg().paths.cache_dir)).expanduser()


def sweep_dir(output_root: Path) -> Path:
    [found] = list((output_root / "multiruns").iterdir())
    return found


def submitit_log(root: Path, job_id: str) -> str:
    """A job's own stdout, which submitit keeps in the sweep folder under .submitit/<job id>/."""
    path = root / ".submitit" / job_id / f"{job_id}_0_log.out"
    return path.read_text() if path.exists() else ""


def all_submitit_logs(output_root: Path) -> str:
    logs = sorted(output_root.glob("multiruns/*/.submitit/*/*_log.*"))
    return "\n".join(f"--- {path}\n{path.read_text()[-2000:]}" for path in logs)


def sweep(launcher: str, output_root: Path, data_dir: Path, cache_dir: Path, timeout: float,
          *overrides: str) -> subprocess.CompletedProcess:
    try:
        return run_main("-m", f"hydra/launcher={launcher}", *overrides, f"paths.cache_dir={cache_dir}",
                        data_dir=data_dir, output_root=output_root, timeout=timeout)
    except subprocess.TimeoutExpired:
        # e.g. a job died without a result and nothing tells submitit (no Slurm accounting here)
        pytest.fail(f"the {launcher} sweep took over {timeout:.0f} s; its jobs' logs:\n"
                    f"{all_submitit_logs(output_root)}")


def check_jobs(proc: subprocess.CompletedProcess, output_root: Path) -> dict[str, str]:
    """Every job of the sweep finished its problem in its own folder; returns problem -> job id."""
    assert proc.returncode == 0, proc.stderr[-3000:] + all_submitit_logs(output_root)
    root = sweep_dir(output_root)
    job_ids: dict[str, str] = {}
    for num, problem in enumerate(PROBLEMS):
        job_dir = root / f"{num}_psb2_{problem}"
        result = json.loads((job_dir / "result.json").read_text())
        assert result["problem"] == problem and result["dataset"] == "psb2", result
        assert result["stopped"] in ("solved", "budget") and result["programs"] >= 1, result
        assert len((job_dir / "programs.jsonl").read_text().splitlines()) == result["programs"]
        hydra_cfg = yaml.safe_load((job_dir / ".hydra" / "hydra.yaml").read_text())["hydra"]
        assert hydra_cfg["job"]["num"] == num and f"problem={problem}" in hydra_cfg["overrides"]["task"]
        job_ids[problem] = str(hydra_cfg["job"]["id"])
        assert f"psb2/{problem}: " in submitit_log(root, job_ids[problem])
    return job_ids


def test_local_submitit_sweep(data_dir: Path, cache_dir: Path, tmp_path: Path) -> None:
    proc = sweep("local", tmp_path, data_dir, cache_dir, 900, f"problem={','.join(PROBLEMS)}",
                 "search=greedy")
    job_ids = check_jobs(proc, tmp_path)
    # submitit's local executor names a job by its process id: each job was a process of its own
    assert all(job_id.isdigit() for job_id in job_ids.values()), job_ids
    assert len(set(job_ids.values())) == len(PROBLEMS), job_ids


def slurm_unavailable(reason: str) -> None:
    """In CI (CI set, as CI services set it) a cluster that cannot be brought up fails the test:
    the setup installs Slurm there, so a skip would hide that it broke. Elsewhere it is a skip."""
    unavailable(reason)


@pytest.fixture(scope="session")
def slurm() -> Iterator[None]:
    """A one-node Slurm cluster on this machine, started (and installed if need be) by the script.
    After the tests the daemons they started are stopped; a cluster that was already up stays up."""
    if os.geteuid() != 0:
        slurm_unavailable("Slurm needs root to start: run `bash scripts/slurm-up.sh` and the tests as root")
    daemons = Daemons.snapshot()
    try:
        proc = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "slurm-up.sh")], capture_output=True,
                              text=True, timeout=1200)
        if proc.returncode != 0:
            message = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
            slurm_unavailable(f"scripts/slurm-up.sh failed ({proc.returncode}): {message}")
        yield
    finally:
        daemons.stop_started()


@pytest.fixture
def slurm_output(slurm: None, tmp_path: Path) -> Iterator[Path]:
    """The sweep's output root; afterwards any of its jobs still queued or running is cancelled,
    since Slurm jobs outlive a sweep that failed or was killed."""
    yield tmp_path
    folders = tmp_path.glob("multiruns/*/.submitit/*")
    job_ids = {folder.name for folder in folders if re.fullmatch(r"\d+(_\d+)?", folder.name)}
    if job_ids:
        subprocess.run(["scancel", *sorted(job_ids)], capture_output=True, check=False)


def slurm_jobs(job_id: str) -> list[dict[str, str]]:
    """`scontrol show job`, one dict per job or array task (finished jobs stay for MinJobAge)."""
    out = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True,
                         check=True).stdout
    return [dict(re.findall(r"(\w+)=(\S*)", line)) for line in out.splitlines()]


def settled_slurm_jobs(job_id: str, timeout: float = 120) -> list[dict[str, str]]:
    """`slurm_jobs` once none is pending or running any more (or after `timeout` s). submitit reads
    a job's result as soon as it is written, while the job's process may still be exiting and
    Slurm still lists it as RUNNING or COMPLETING."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = slurm_jobs(job_id)
        if all(job["JobState"] not in ("PENDING", "RUNNING", "COMPLETING") for job in jobs) \
                or time.monotonic() > deadline:
            return jobs
        time.sleep(0.5)


@pytest.mark.timeout(2400)  # slurm-up.sh may install packages first
def test_slurm_sweep(slurm_output: Path, data_dir: Path, cache_dir: Path) -> None:
    proc = sweep("slurm", slurm_output, data_dir, cache_dir, 1200, f"problem={','.join(PROBLEMS)}",
                 "search=greedy")
    job_ids = check_jobs(proc, slurm_output)
    # one Slurm array for the sweep, one task per job: <array job id>_<task id>
    assert all(re.fullmatch(r"\d+_\d+", job_id) for job_id in job_ids.values()), job_ids
    [array_id] = {job_id.split("_")[0] for job_id in job_ids.values()}
    tasks = {job["ArrayTaskId"]: job for job in settled_slurm_jobs(array_id)}
    for num, problem in enumerate(PROBLEMS):
        task = tasks[str(num)]
        assert task["JobState"] == "COMPLETED" and task["ExitCode"] == "0:0", task
        assert task["Partition"] == "debug" and task["NumCPUs"] == "2", task
    submission = next(sweep_dir(slurm_output).glob(".submitit/*/*_submission.sh")).read_text()
    assert "#SBATCH --partition=debug" in submission and "#SBATCH --mem=4GB" in submission


def wait_for(condition: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            stderr = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"the sweep ended before {what}: {stderr[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(1)


@pytest.fixture
def background() -> Iterator[list[subprocess.Popen]]:
    """Sweeps started in the background, stopped if a test fails before they end."""
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)


@pytest.mark.timeout(2400)
def test_slurm_preempted_job_is_requeued_and_resumes_in_its_folder(
        slurm_output: Path, data_dir: Path, cache_dir: Path, background: list[subprocess.Popen]) -> None:
    """Slurm warns a job it is about to be preempted (or time out) with the signal submitit asks
    for; the launcher's checkpoint requeues the same pickled job, and seidr picks up from its
    programs.jsonl in the same run folder instead of starting again."""
    budget = 2  # a draft before the interruption, one after; the first rarely solves bowling
    args = [sys.executable, str(REPO_ROOT / "main.py"), "-m", "hydra/launcher=slurm", "problem=bowling",
            f"search.max_programs={budget}", "search.branching_factor=2", "tracking=none",
            f"paths.cache_dir={cache_dir}", f"paths.data_dir={data_dir}", f"paths.output_root={slurm_output}"]
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "DATA_PATH")}
    proc = subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    background.append(proc)

    def recorded() -> int:
        path = next(slurm_output.glob("multiruns/*/0_psb2_bowling/programs.jsonl"), None)
        return len(path.read_text().splitlines()) if path is not None else 0

    wait_for(lambda: recorded() >= 1, 900, "the job to record a program", proc)
    root = sweep_dir(slurm_output)
    # a one-job sweep is a plain Slurm job, not an array: its folder holds the pickled job
    [pickled] = list((root / ".submitit").glob("*/*_submitted.pkl"))
    job_id = pickled.parent.name
    # what Slurm sends ahead of a preemption or the time limit (submitit asks for --signal=USR2@<delay>)
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    wait_for(lambda: "Requeued job" in submitit_log(root, job_id), 120, "submitit to requeue the job", proc)

    _, err = proc.communicate(timeout=1200)
    assert proc.returncode == 0, err[-3000:]
    log = submitit_log(root, job_id)
    assert "Caught signal SIGUSR2" in log and "this job is preempted" in log, log
    assert log.count("Starting with JobEnvironment") == 2, log
    [job] = settled_slurm_jobs(job_id)
    assert job["Restarts"] == "1" and job["JobState"] == "COMPLETED", job
    # one run folder, resumed: every program once, in order, and the budget spent exactly
    assert [d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")] == ["0_psb2_bowling"]
    job_out = root / "0_psb2_bowling"
    assert "resuming:" in (job_out / "main.log").read_text()
    ids = [json.loads(line)["id"] for line in (job_out / "programs.jsonl").read_text().splitlines()]
    result = json.loads((job_out / "result.json").read_text())
    assert ids == list(range(len(ids))) and result["programs"] == len(ids)
    assert result["solved"] or len(ids) == budget
