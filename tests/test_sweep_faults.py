"""`-m` sweeps whose jobs fail: every job still runs, and the sweep ends with status 2 and one
line per failed job (its overrides and why), whatever made it fail."""

from __future__ import annotations

import json
from pathlib import Path

from tests.servers.base import JsonServer
from tests.servers.openai_server import OpenAIServer
from tests.test_cli import run_main, seidr_reply

TINY = ["model=openai", "model.name=m", "model.api_key=k", "model.cache=false", "search.max_programs=2"]


def failed_lines(stderr: str) -> list[str]:
    lines = stderr.splitlines()
    start = next(i for i, line in enumerate(lines) if "jobs failed" in line)
    return [line for line in lines[start + 1:] if line.startswith("  job ")]


def test_a_sweep_whose_every_job_fails_exits_2_and_lists_them(data_dir, tmp_path):
    proc = run_main("-m", "problem=nope1,nope2", *TINY, data_dir=data_dir, output_root=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "seidr: error: 2 of 2 jobs failed" in proc.stderr
    [first, second] = failed_lines(proc.stderr)
    assert first.startswith("  job 0 (") and "problem=nope1" in first
    assert "unknown PSB2 problem 'nope1'" in first
    assert second.startswith("  job 1 (") and "problem=nope2" in second
    assert "model.api_key=k" not in proc.stderr  # the overrides are masked like everything else


class GarbageServer(JsonServer):
    """Says it serves model m, then answers every completion with JSON that is no completion."""

    def __init__(self) -> None:
        super().__init__(self._route)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _route(self, method: str, path: str, body: object) -> tuple[int, object, dict[str, str]]:
        if method == "GET":
            return 200, {"object": "list", "data": [{"id": "m", "object": "model"}]}, {}
        return 200, {"id": "x", "object": "chat.completion", "garbage": [1, 2, 3]}, {}


def test_jobs_given_garbage_replies_fail_in_the_list_not_with_a_traceback(data_dir, tmp_path):
    with GarbageServer() as server:
        proc = run_main("-m", "problem=fizz-buzz,gcd", *TINY, f"model.base_url={server.base_url}",
                        data_dir=data_dir, output_root=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "seidr: error: 2 of 2 jobs failed" in proc.stderr
    assert [line.split(" (")[0] for line in failed_lines(proc.stderr)] == ["  job 0", "  job 1"]


class BuggyBackend:
    """A model backend with a bug: every request raises an exception seidr does not expect."""

    model_name = "m"

    def __init__(self, **settings: object) -> None:
        pass

    async def generate(self, messages: object, **options: object) -> list:
        raise RuntimeError("a bug in the backend")

    async def aclose(self) -> None:
        pass


def test_a_job_that_crashes_is_a_failed_job_with_its_traceback_kept(data_dir, tmp_path):
    buggy = "model.backend._target_=tests.test_sweep_faults.BuggyBackend"
    proc = run_main("-m", "problem=fizz-buzz,gcd", *TINY, buggy, data_dir=data_dir, output_root=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "seidr: error: 2 of 2 jobs failed" in proc.stderr
    lines = failed_lines(proc.stderr)
    assert len(lines) == 2 and all("RuntimeError: a bug in the backend" in line for line in lines)
    # the second job ran although the first crashed, and the traceback is kept, not printed
    statuses = [json.loads(path.read_text()) for path in sorted(tmp_path.rglob("sweep_job.json"))]
    assert [s["number"] for s in statuses] == [0, 1]
    assert all(s["status"] == "failed" and "a bug in the backend" in s["traceback"] for s in statuses)


def test_rerunning_a_fixed_sweep_folder_forgets_the_earlier_failures(data_dir, tmp_path):
    """An experiment's folder is fixed and rerun to resume: a job that failed in an earlier run
    of the sweep, fixed since, is not reported again."""
    fixed = f"hydra.sweep.dir={tmp_path / 'sweep'}"
    failed = run_main("-m", "problem=nope1", *TINY, fixed, data_dir=data_dir, output_root=tmp_path)
    assert failed.returncode == 2, failed.stderr[-2000:]
    with OpenAIServer(seidr_reply, model="m") as server:
        fixed_up = run_main("-m", "problem=fizz-buzz", *TINY, fixed, f"model.base_url={server.base_url}",
                            data_dir=data_dir, output_root=tmp_path)
    assert fixed_up.returncode == 0, fixed_up.stderr[-2000:]
    assert "jobs failed" not in fixed_up.stderr


def test_the_anytime_plot_runs_to_the_budget_not_to_the_last_solve(tmp_path, monkeypatch):
    """A sweep of 100-program jobs whose last solve took 3 programs: the curve goes on, flat, to
    100; ending at 3 would read as if the rest of the budget was never spent."""
    from matplotlib.figure import Figure

    from seidr.report import write_report

    for name, solved, programs in (("a", True, 3), ("b", False, 100)):
        run = tmp_path / name
        run.mkdir()
        record = {"id": 0, "code": "print(0)", "val_pass_rate": 1.0 if solved else 0.2}
        (run / "programs.jsonl").write_text(json.dumps(record) + "\n")
        (run / "result.json").write_text(json.dumps({
            "problem": name, "dataset": "psb2", "language": "python", "model": "m", "strategy": "seidr",
            "selection": "beam", "branching_factor": 2, "solved": solved, "programs": programs,
            "max_programs": 100, "prompt_tokens": 10, "completion_tokens": 5, "test_pass_rate": None,
            "best_program_id": 0, "best_program": "print(0)"}))
    saved: dict[str, Figure] = {}
    real_savefig = Figure.savefig

    def keep(figure: Figure, path: Path, **options: object) -> None:
        saved[Path(path).name] = figure  # the figure itself, to read its axes
        real_savefig(figure, path, **options)

    monkeypatch.setattr(Figure, "savefig", keep)
    write_report(tmp_path)
    programs_axis = saved["anytime.png"].axes[0]
    assert programs_axis.get_xlim()[1] == 100
    [curve] = programs_axis.get_lines()
    assert list(curve.get_xdata())[-1] == 100 and list(curve.get_ydata())[-1] == 1


class KilledBackend:
    """model.name=kill: the job's process is SIGKILLed at its first request (as the OOM killer or
    a cancelled Slurm job ends it); any other name answers every request with a right program."""

    def __init__(self, name: str, **settings: object) -> None:
        self.model_name = name

    async def generate(self, messages: object, *, n: int, **options: object) -> list:
        import os
        import signal

        from seidr.llm.base import Completion
        from tests.test_cli import FIZZ_BUZZ_RIGHT

        if self.model_name == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        return [Completion(FIZZ_BUZZ_RIGHT, "stop")] * n

    async def aclose(self) -> None:
        pass


def test_a_sweep_job_killed_outright_is_a_failed_job_recorded_as_killed(data_dir, tmp_path):
    killed = "model.backend._target_=tests.test_sweep_faults.KilledBackend"
    proc = run_main("-m", "hydra/launcher=local", "problem=fizz-buzz", "model.name=kill,ok",
                    *(o for o in TINY if not o.startswith("model.name")), killed,
                    data_dir=data_dir, output_root=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "seidr: sweep of 2 jobs: 1 solved, 0 not solved, 1 failed" in proc.stdout
    assert "seidr: error: 1 of 2 jobs failed" in proc.stderr
    [line] = failed_lines(proc.stderr)
    assert line.startswith("  job 0 (") and "model.name=kill" in line and "killed" in line
    statuses = {s["number"]: s for s in (json.loads(p.read_text()) for p in tmp_path.rglob("sweep_job.json"))}
    assert statuses[0]["status"] == "killed" and statuses[1]["status"] == "finished"


def test_a_sweep_that_succeeds_ends_with_its_summary(data_dir, tmp_path):
    with OpenAIServer(seidr_reply, model="m") as server:
        proc = run_main("-m", "problem=fizz-buzz,gcd", *TINY, f"model.base_url={server.base_url}",
                        data_dir=data_dir, output_root=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    [sweep] = list((tmp_path / "multiruns").iterdir())
    summary = next(line for line in proc.stdout.splitlines() if line.startswith("seidr: sweep of 2 jobs"))
    solved = sum(json.loads(p.read_text())["solved"] for p in sweep.rglob("result.json"))
    assert f": {solved} solved, {2 - solved} not solved, 0 failed" in summary
    assert f"python -m seidr.report {sweep}" in summary
