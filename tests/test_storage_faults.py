"""Storage faults never lose or misreport work: a cache that cannot be written, a full disk, two
jobs on one run folder, a damaged programs.jsonl line, an interrupt, and the calls of a resumed job.

Full and read-only disks are small tmpfs mounts made here (as root); a test skips only when the
machine refuses the mount."""

from __future__ import annotations

import errno
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from seidr.config import REPO_ROOT
from seidr.errors import SeidrError
from seidr.execution.base import TestOutcome
from seidr.search.tree import Program
from seidr.tracking.results import RunRecorder
from tests.servers.openai_server import OpenAIServer
from tests.test_cli import assert_one_clear_error, run_main
from tests.test_resume import ARGS, bodies, deep_reply, outcome
from tests.ci import unavailable


def start(server: OpenAIServer, run_dir: Path, cache_dir: Path, data_dir: Path, *extra: str) -> subprocess.Popen:
    args = [sys.executable, str(REPO_ROOT / "main.py"), *ARGS, f"model.base_url={server.base_url}",
            f"hydra.run.dir={run_dir}", f"model.cache_dir={cache_dir}", f"paths.data_dir={data_dir}", *extra]
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    # Ctrl-C as a user's terminal sends it: a job started in the background by a shell without job
    # control inherits SIGINT ignored, and these tests must not depend on how pytest was started
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def finish(process: subprocess.Popen) -> subprocess.CompletedProcess:
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@contextmanager
def tmpfs(folder: Path, *options: str) -> Iterator[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        unavailable(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """An empty folder nobody can write to: a read-only mount as root (who ignores modes)."""
    if os.geteuid() == 0:
        with tmpfs(folder, "size=64k", "ro") as mounted:
            yield mounted
        return
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o555)
    try:
        yield folder
    finally:
        folder.chmod(0o755)


def fill(folder: Path) -> Path:
    """Write a file into `folder` until its file system has no space left."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as out:
        for size in (1 << 16, 1 << 12, 1):
            try:
                while out.write(b"\0" * size):
                    pass
            except OSError as error:
                assert error.errno == errno.ENOSPC
    return filler


def lines_of(path: Path) -> list[dict]:
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), "a torn line was left behind"
    return [json.loads(line) for line in data.decode().splitlines()]


@pytest.fixture(scope="module")
def reference(data_dir, tmp_path_factory):
    """The uninterrupted run: its outcome, the requests it made and its result."""
    folder = tmp_path_factory.mktemp("reference")
    with OpenAIServer(deep_reply, model="m") as server:
        done = finish(start(server, folder / "run", folder / "cache", data_dir))
        assert done.returncode == 0, done.stderr
        result = json.loads((folder / "run" / "result.json").read_text())
        return outcome(folder / "run"), len(bodies(server)), result


def test_a_cache_that_cannot_be_written_is_one_warning_and_the_run_finishes(reference, data_dir, tmp_path):
    expected, requests, _ = reference
    with read_only(tmp_path / "cache") as cache, OpenAIServer(deep_reply, model="m") as server:
        done = finish(start(server, tmp_path / "run", cache, data_dir))
        assert len(bodies(server)) == requests  # every reply was used, none asked for twice
    assert done.returncode == 0, done.stderr
    console = done.stdout + done.stderr
    assert console.count("cannot write the LLM response cache") == 1, console
    assert "Traceback" not in console
    assert outcome(tmp_path / "run") == expected


def test_a_full_disk_stops_with_one_line_and_a_rerun_after_freeing_space_resumes(reference, data_dir, tmp_path):
    expected, requests, _ = reference
    cache = tmp_path / "cache"  # on another disk: the replies paid for before the fault are kept
    with tmpfs(tmp_path / "disk", "size=1m") as disk, OpenAIServer(deep_reply, model="m") as server:
        run_dir = disk / "run"
        answered = server.route
        filled: list[Path] = []

        def route(method, path, body):
            if path.endswith("/chat/completions") and len(server.posts("/v1/chat/completions")) == 8 and not filled:
                filled.append(fill(disk))  # the disk fills up while the job waits for this reply
            return answered(method, path, body)

        server.route = route
        first = finish(start(server, run_dir, cache, data_dir))
        line = assert_one_clear_error(first, "cannot write", "No space left on device", "free space",
                                      f"hydra.run.dir={run_dir}")
        assert first.returncode == 2
        assert line.split("cannot write ")[1].split(":")[0].startswith(str(run_dir))
        kept = lines_of(run_dir / "programs.jsonl")
        assert [p["id"] for p in kept] == list(range(len(kept)))
        assert not list(run_dir.glob(".*.tmp"))  # no half-written result.json beside it

        filled[0].unlink()  # free space
        server.route = answered
        sent = len(bodies(server))
        paid_for = len(list(cache.rglob("*.json")))
        second = finish(start(server, run_dir, cache, data_dir))
        assert second.returncode == 0, second.stderr
        assert len(bodies(server)) - sent == requests - paid_for  # nothing paid for is asked again
        assert outcome(run_dir) == expected


def test_a_run_folder_that_cannot_be_written_is_one_line(data_dir, tmp_path):
    with read_only(tmp_path / "ro") as folder:
        refused = run_main("model=openai", "model.api_key=k", f"hydra.run.dir={folder / 'run'}", data_dir=data_dir)
    assert refused.returncode == 2
    assert_one_clear_error(refused, f"cannot write {folder / 'run'}", f"make {folder} writable")


def program(id: int, code: str) -> Program:
    return Program(id=id, parent_id=None, kind="draft", generation=0, code=code,
                   outcomes=(TestOutcome("pass", 1.0), TestOutcome("wrong", 0.0, actual="1")))


def test_a_refused_append_cuts_its_partial_line_and_nothing_follows_it(tmp_path):
    with tmpfs(tmp_path / "disk", "size=64k") as disk:
        recorder = RunRecorder(disk / "run")
        recorder.add_program(program(0, "print(0)\n"))
        before = recorder.programs_path.read_bytes()
        fill(disk)
        # longer than what is left of the file's last page: part of it is written before the refusal
        with pytest.raises(SeidrError, match="No space left on device; free space and rerun with hydra.run.dir="):
            recorder.add_program(program(1, "print(1)\n" * 2000))
        assert recorder.programs_path.read_bytes() == before
        # a short line would fit in that page; it must not be written after a missing one
        with pytest.raises(SeidrError, match="cannot write .*programs.jsonl"):
            recorder.add_program(program(2, "print(2)\n"))
        assert recorder.programs_path.read_bytes() == before
        with pytest.raises(SeidrError, match="cannot write .*result.json: No space left on device"):
            recorder.write_result({"programs": 1, "best_program_id": 0, "best_program": "print(0)\n",
                                   "val_score": 0.5, "val_pass_rate": 0.5, "solved": False, "text": "x" * 100_000})
        assert sorted(p.name for p in (disk / "run").iterdir()) == ["programs.jsonl"]


def test_result_json_is_made_like_any_other_file(tmp_path):
    old = os.umask(0o022)
    try:
        RunRecorder(tmp_path / "run").write_result({"programs": 0, "best_program_id": None, "solved": False})
    finally:
        os.umask(old)
    assert (tmp_path / "run" / "result.json").stat().st_mode & 0o777 == 0o644


def hold_request(server: OpenAIServer, number: int) -> tuple[threading.Event, threading.Event]:
    """Make the server hold its `number`th chat request (and any after it) until `release` is
    set; `reached` is set when it arrives. Ordering by events, not by sleeping."""
    reached, release = threading.Event(), threading.Event()
    answered = server.route

    def route(method, path, body):
        if path.endswith("/chat/completions") and len(server.posts("/v1/chat/completions")) >= number:
            reached.set()
            release.wait(timeout=120)
        return answered(method, path, body)

    server.route = route
    return reached, release


def test_a_second_job_on_the_same_folder_is_refused(reference, data_dir, tmp_path):
    expected, _, _ = reference
    run_dir = tmp_path / "run"
    with OpenAIServer(deep_reply, model="m") as server:
        reached, release = hold_request(server, 5)  # the first job holds its folder, mid-run
        first = start(server, run_dir, tmp_path / "cache", data_dir)
        try:
            assert reached.wait(timeout=120)
            second = finish(start(server, run_dir, tmp_path / "cache", data_dir))
        finally:
            release.set()
        done = finish(first)
    assert second.returncode == 2
    assert_one_clear_error(second, str(run_dir), f"pid {first.pid}", "in use")
    assert done.returncode == 0, done.stderr
    assert outcome(run_dir) == expected  # every program once, in order


def test_a_damaged_line_stops_the_resume_until_repaired(reference, data_dir, tmp_path):
    expected, _, _ = reference
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    with OpenAIServer(deep_reply, model="m") as server:
        assert finish(start(server, run_dir, cache, data_dir)).returncode == 0
        lines = (run_dir / "programs.jsonl").read_text().splitlines(keepends=True)
        assert len(lines) > 14
        damaged = "".join(lines[:11]) + '{"id": 11, "code": "x\n' + "".join(lines[12:])  # line 12
        (run_dir / "programs.jsonl").write_text(damaged)
        (run_dir / "result.json").unlink()
        requests = len(bodies(server))

        refused = finish(start(server, run_dir, cache, data_dir))
        assert refused.returncode == 2
        assert_one_clear_error(refused, "programs.jsonl line 12 is damaged", "resume.repair=true")
        assert (run_dir / "programs.jsonl").read_text() == damaged  # nothing cut, nothing appended

        repaired = finish(start(server, run_dir, cache, data_dir, "resume.repair=true"))
        assert repaired.returncode == 0, repaired.stderr
        assert len(bodies(server)) == requests  # the dropped programs were made again from the cache
    assert outcome(run_dir) == expected  # each program once
    assert (run_dir / "programs.jsonl.dropped").read_text() == damaged.split("".join(lines[:11]), 1)[1]


def test_a_repeated_line_is_damage_not_a_program(tmp_path):
    recorder = RunRecorder(tmp_path / "run")
    for i in range(3):
        recorder.add_program(program(i, f"print({i})\n"))
    lines = recorder.programs_path.read_text().splitlines(keepends=True)
    recorder.programs_path.write_text("".join([lines[0], lines[1], lines[1], lines[2]]))
    with pytest.raises(SeidrError, match=r"line 3 is damaged \(program id 1 where 2 was expected\)"):
        RunRecorder(tmp_path / "run")


def test_an_interrupt_says_what_was_kept(data_dir, tmp_path):
    with OpenAIServer(deep_reply, model="m") as server:
        reached, release = hold_request(server, 1)  # no reply reaches the job before it is interrupted
        job = start(server, tmp_path / "run", tmp_path / "cache", data_dir)
        try:
            assert reached.wait(timeout=120)
            job.send_signal(signal.SIGINT)
            stopped = finish(job)
        finally:
            release.set()
    assert stopped.returncode == 130
    assert f"seidr: interrupted; no program was recorded yet in {tmp_path / 'run'}" in stopped.stderr
    assert "programs.jsonl" not in stopped.stderr


def test_an_interrupt_names_the_programs_it_kept(data_dir, tmp_path):
    with OpenAIServer(deep_reply, model="m") as server:
        answered = server.route
        job = start(server, tmp_path / "run", tmp_path / "cache", data_dir)

        def route(method, path, body):
            if path.endswith("/chat/completions") and len(server.posts("/v1/chat/completions")) == 10:
                job.send_signal(signal.SIGINT)
            return answered(method, path, body)

        server.route = route
        stopped = finish(job)
    assert stopped.returncode == 130
    kept = len(lines_of(tmp_path / "run" / "programs.jsonl"))
    assert kept > 0
    assert (f"seidr: interrupted; {kept} programs kept in {tmp_path / 'run' / 'programs.jsonl'}; "
            f"to resume, run: ") in stopped.stderr
    # the key given on the command line is not printed, and is named as left out
    assert "model.api_key=k " not in stopped.stderr and "(add model.api_key again, or set it in the environment" in stopped.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stopped_job_prints_the_command_that_resumes_it(reference, data_dir, tmp_path, signum):
    """Ctrl-C, a Slurm cancel (SIGTERM) or a closed terminal (SIGHUP): one line with the programs
    kept and the whole command; main.log records the end; that command, run as printed, resumes."""
    expected, _, _ = reference
    run_dir, env = tmp_path / "run", {**os.environ, "OPENAI_API_KEY": "k"}
    with OpenAIServer(deep_reply, model="m") as server:
        args = [sys.executable, str(REPO_ROOT / "main.py"), *(a for a in ARGS if "api_key" not in a),
                f"model.base_url={server.base_url}", f"hydra.run.dir={run_dir}", f"model.cache_dir={tmp_path / 'c'}",
                f"paths.data_dir={data_dir}", "+extra.note='two words'"]
        job = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               cwd=REPO_ROOT, preexec_fn=lambda: [signal.signal(s, signal.SIG_DFL) for s in (
                                   signal.SIGINT, signal.SIGTERM, signal.SIGHUP)])
        answered = server.route

        def route(method, path, body):
            if path.endswith("/chat/completions") and len(server.posts("/v1/chat/completions")) == 10:
                job.send_signal(signum)
            return answered(method, path, body)

        server.route = route
        stopped = finish(job)
        server.route = answered
        assert stopped.returncode == 128 + signum, stopped.stderr
        how = "interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
        [line] = [line for line in stopped.stderr.splitlines() if line.startswith("seidr: ")]
        assert line.startswith(f"seidr: {how}; ") and "programs kept in" in line, stopped.stderr
        assert f"{how}; " in (run_dir / "main.log").read_text()
        command = line.split("to resume, run: ", 1)[1]
        resumed = subprocess.run(shlex.split(command), capture_output=True, text=True, env=env, cwd=REPO_ROOT,
                                 timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming: " in (run_dir / "main.log").read_text()
    assert outcome(run_dir) == expected


def test_a_resumed_job_counts_the_calls_of_every_run(reference, data_dir, tmp_path):
    _, _, expected = reference
    with OpenAIServer(deep_reply, model="m") as server:
        answered = server.route

        def dies_after_six(method, path, body):
            if path.endswith("/chat/completions") and len(server.posts("/v1/chat/completions")) > 6:
                return 503, {"error": {"message": "gone"}}, {}
            return answered(method, path, body)

        server.route = dies_after_six
        first = finish(start(server, tmp_path / "run", tmp_path / "cache", data_dir))
        assert first.returncode == 2
        stopped = json.loads((tmp_path / "run" / "result.json").read_text())
        assert stopped["stopped"] == "error" and 0 < stopped["llm_calls"] < expected["llm_calls"]
        server.route = answered
        assert finish(start(server, tmp_path / "run", tmp_path / "cache", data_dir)).returncode == 0
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["llm_calls"] == expected["llm_calls"]  # every reply was paid for once, in one run or the other
    assert result["llm_calls_this_run"] == expected["llm_calls"] - stopped["llm_calls"]


def recorded_result(**claims) -> dict:
    """A result for programs 0 (half right) and 1 (right) as recorded by `recorder_with_two`."""
    return {"programs": 2, "best_program_id": 1, "best_program": "print(1)\n", "val_score": 1.0,
            "val_pass_rate": 1.0, "solved": True, "stopped": "solved", **claims}


def recorder_with_two(folder: Path) -> RunRecorder:
    recorder = RunRecorder(folder)
    recorder.add_program(program(0, "print(0)\n"))
    recorder.add_program(Program(id=1, parent_id=0, kind="repair", generation=1, code="print(1)\n",
                                 outcomes=(TestOutcome("pass", 1.0), TestOutcome("pass", 1.0))))
    return recorder


@pytest.mark.parametrize("claims", [
    {"programs": 3}, {"best_program_id": 0}, {"best_program": "print(2)\n"}, {"val_score": 0.5},
    {"stopped": "error"}, {"programs": 1, "best_program_id": 2, "best_program": "print(2)\n"},
])
def test_a_result_is_written_only_when_the_recorded_programs_bear_it_out(tmp_path, claims):
    recorder = recorder_with_two(tmp_path / "run")
    with pytest.raises(SeidrError, match="not writing .*result.json"):
        recorder.write_result(recorded_result(**claims))
    assert not recorder.result_path.exists()
    recorder.write_result(recorded_result())
    assert json.loads(recorder.result_path.read_text())["solved"]


def test_a_resumed_recorder_bears_out_the_programs_it_checked(tmp_path):
    recorder_with_two(tmp_path / "run")
    again = RunRecorder(tmp_path / "run")
    again.add_program(program(0, "print(0)\n"))
    with pytest.raises(SeidrError, match="counts 2 programs where 1 are recorded"):
        again.write_result(recorded_result())


def test_the_report_lists_a_result_whose_best_program_is_not_recorded_as_damaged(tmp_path):
    from seidr.report import summarize

    recorder = recorder_with_two(tmp_path / "runs" / "good")
    recorder.write_result({**recorded_result(), "dataset": "psb2", "problem": "p", "test_pass_rate": 1.0})
    bad = tmp_path / "runs" / "bad"
    bad.mkdir()
    (bad / "programs.jsonl").write_bytes(recorder.programs_path.read_bytes().splitlines(keepends=True)[0])
    (bad / "result.json").write_text(recorder.result_path.read_text())  # best program 1 is not in it
    summaries = summarize(tmp_path)
    rows = {s.config: s.row() for s in summaries}
    [counted] = [row for config, row in rows.items() if config != "unfinished"]
    assert counted["solved_validation"] == 1 and counted["jobs"] == 1
    [unfinished] = [s for s in summaries if s.config == "unfinished"]
    assert unfinished.unfinished == ["runs/bad (damaged: its best program 1 is not the one programs.jsonl records)"]


def test_a_paid_call_is_counted_before_its_reply_is_cached(tmp_path):
    """Killed between the two, a reply in the cache that no count holds would be replayed for free."""
    import asyncio

    from seidr.llm.base import Completion, Message
    from seidr.llm.cache import ResponseCache
    from seidr.llm.client import LLMClient

    recorder = RunRecorder(tmp_path / "run")
    counted_when_cached = []

    class Watching(ResponseCache):
        def put(self, key, completions):
            counted_when_cached.append(json.loads(recorder.usage_path.read_text())["llm_calls"])
            super().put(key, completions)

    class Backend:
        model_name = "m"

        async def generate(self, messages, n, temperature, max_tokens, seed):
            return [Completion("print(1)", "stop", 3, 2)] * n

    client = LLMClient(Backend(), temperature=0.7, max_tokens=10, max_concurrency=1, seed=0,
                       cache=Watching(tmp_path / "cache"))
    client.on_paid = lambda usage: recorder.record_usage(usage.calls, usage.cost_usd)
    for prompt in ("a", "b"):
        asyncio.run(client.sample([Message("user", prompt)]))
    assert counted_when_cached == [1, 2]


@pytest.mark.parametrize("damage", ["{not json", "[]", '{"cost_usd": 1.0}'])
def test_a_damaged_usage_record_is_named_not_counted_from_zero(tmp_path, damage):
    recorder_with_two(tmp_path / "run")
    (tmp_path / "run" / "llm_usage.json").write_text(damage)
    with pytest.raises(SeidrError, match=r"llm_usage.json is damaged .*restore it, or delete it"):
        RunRecorder(tmp_path / "run")


def test_a_damaged_job_record_is_named_damaged(tmp_path):
    recorder = recorder_with_two(tmp_path / "run")
    (tmp_path / "run" / "job.json").write_text('{"problem": "fizz')
    with pytest.raises(SeidrError, match=r"job.json is damaged .*restore it, or delete it") as refused:
        RunRecorder(tmp_path / "run").claim({"problem": "fizz-buzz"})
    assert "different job" not in str(refused.value)
    assert recorder.programs_path.exists()


def test_a_finished_job_whose_programs_were_deleted_is_run_again(tmp_path):
    recorder = recorder_with_two(tmp_path / "run")
    recorder.write_result(recorded_result())
    assert RunRecorder(tmp_path / "run").finished_result() is not None
    recorder.programs_path.unlink()
    assert RunRecorder(tmp_path / "run").finished_result() is None


KEEPS_ITS_SIGTERM = ("import os, runpy, signal, sys\n"
                     "signal.signal(signal.SIGTERM, lambda *_: os.write(2, b'handled by the launcher\\n'))\n"
                     "sys.argv[0] = {main!r}\n"
                     "runpy.run_path({main!r}, run_name='__main__')\n")


def test_a_sigterm_handler_set_before_the_job_is_left_to_its_owner(reference, data_dir, tmp_path):
    """submitit handles SIGTERM (and requeues on its own signal) in the job's process: the job
    does not take the signal over, so the launcher's handling goes on working."""
    expected, _, _ = reference
    with OpenAIServer(deep_reply, model="m") as server:
        args = [sys.executable, "-c", KEEPS_ITS_SIGTERM.format(main=str(REPO_ROOT / "main.py")), *ARGS,
                f"model.base_url={server.base_url}", f"hydra.run.dir={tmp_path / 'run'}",
                f"model.cache_dir={tmp_path / 'cache'}", f"paths.data_dir={data_dir}"]
        job = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT,
                               env={k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"})
        answered = server.route

        def route(method, path, body):
            if path.endswith("/chat/completions") and len(server.posts("/v1/chat/completions")) == 10:
                job.send_signal(signal.SIGTERM)
            return answered(method, path, body)

        server.route = route
        done = finish(job)
    assert done.returncode == 0, done.stderr
    assert "handled by the launcher" in done.stderr and "stopped by SIGTERM" not in done.stderr
    assert outcome(tmp_path / "run") == expected
