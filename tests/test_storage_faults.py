"""Storage faults never lose or misreport work: a cache that cannot be written, a full disk, two
jobs on one run folder, a damaged programs.jsonl line, an interrupt, and the calls of a resumed job.

Full and read-only disks are small tmpfs mounts made here (as root); a test skips only when the
machine refuses the mount."""

from __future__ import annotations

import errno
import json
import os
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
            recorder.write_result({"text": "x" * 100_000})
        assert sorted(p.name for p in (disk / "run").iterdir()) == ["programs.jsonl"]


def test_result_json_is_made_like_any_other_file(tmp_path):
    old = os.umask(0o022)
    try:
        RunRecorder(tmp_path / "run").write_result({"solved": True})
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
            f"rerun with hydra.run.dir={tmp_path / 'run'} to resume") in stopped.stderr


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
