"""Durability: a job killed at any point resumes where it stopped, pays for nothing twice, and
ends exactly as a run that was never interrupted."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading

import git
import pytest

from seidr.config import REPO_ROOT
from tests.servers.openai_server import OpenAIServer
from tests.test_cli import assert_one_clear_error

RIGHT = ("x = int(input())\n"
         "print('FizzBuzz' if x % 15 == 0 else 'Fizz' if x % 3 == 0 else 'Buzz' if x % 5 == 0 else x)\n")


def deep_reply(messages, body, index):
    """Each repair is one step deeper than its parent; depth 3 is right. Replies depend only on
    the request (prompt, seed, choice), never on timing or on how many requests came before."""
    text = messages[-1]["content"]
    if "Do not write code" in text:
        return f"Explanation {body.get('seed')}-{index}: it never prints Buzz."
    depth = int(re.findall(r"# depth (\d+)", text)[0]) + 1 if "according to a review" in text else 0
    if depth >= 3:
        return f"```python\n# depth {depth}\n{RIGHT}```"
    return f"```python\n# depth {depth} seed {body.get('seed')} choice {index}\nx = int(input())\nprint(x)\n```"


ARGS = ["model=openai", "model.name=m", "model.api_key=k", "model.max_retries=0", "search.branching_factor=2",
        "search.max_programs=40"]


def job_args(server, run_dir, cache_dir, data_dir, *more: str) -> list[str]:
    """main.py's command line; `more` overrides (tracking is off unless they set it)."""
    tracking = [] if any(o.startswith("tracking") for o in more) else ["tracking=none"]
    return [sys.executable, str(REPO_ROOT / "main.py"), *ARGS, *tracking, *more,
            f"model.base_url={server.base_url}", f"hydra.run.dir={run_dir}", f"model.cache_dir={cache_dir}",
            f"paths.data_dir={data_dir}"]


def job(server, run_dir, cache_dir, data_dir, *more: str) -> subprocess.Popen:
    """main.py in the background; `more` overrides (tracking is off unless they set it)."""
    args = job_args(server, run_dir, cache_dir, data_dir, *more)
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT)


def outcome(run_dir):
    result = json.loads((run_dir / "result.json").read_text())
    programs = [json.loads(line) for line in (run_dir / "programs.jsonl").read_text().splitlines()]
    keep = ("solved", "val_score", "test_pass_rate", "programs", "best_program_id", "best_program")
    return {k: result[k] for k in keep}, [(p["id"], p["parent_id"], p["code"], p["val_score"]) for p in programs]


def bodies(server):
    return [json.dumps(r.body, sort_keys=True) for r in server.posts("/v1/chat/completions")]


@pytest.fixture(scope="module")
def reference(data_dir, tmp_path_factory):
    """The uninterrupted run."""
    folder = tmp_path_factory.mktemp("reference")
    with OpenAIServer(deep_reply, model="m") as server:
        process = job(server, folder / "run", folder / "cache", data_dir)
        assert process.wait(timeout=300) == 0, process.stderr.read()
        return outcome(folder / "run"), len(bodies(server))


def kill_at(server, process: subprocess.Popen, at_request: int) -> threading.Event:
    """From the server's side: once it has received `at_request` chat requests, the job is
    SIGKILLed, and no request is answered until it is dead, so none of the replies in flight
    reaches it. Returns the event set when the kill is done."""
    answered, killed, lock = server.route, threading.Event(), threading.Lock()

    def route(method, path, body):
        if path.endswith("/chat/completions") and len(server.posts("/v1/chat/completions")) >= at_request:
            with lock:  # requests arriving together all wait here until the job is gone
                if not killed.is_set():
                    process.send_signal(signal.SIGKILL)
                    process.wait()
                    killed.set()
        return answered(method, path, body)

    server.route = route
    return killed


@pytest.mark.parametrize("kill_at_request", [2, 4, 7, 10])
def test_killed_job_resumes_to_the_same_result_without_repeating_calls(reference, data_dir, tmp_path,
                                                                        kill_at_request):
    (expected, reference_requests) = reference
    assert kill_at_request < reference_requests
    run_dir, cache_dir = tmp_path / "run", tmp_path / "cache"
    with OpenAIServer(deep_reply, model="m") as server:
        answered = server.route
        first = job(server, run_dir, cache_dir, data_dir)
        killed = kill_at(server, first, kill_at_request)
        first.wait(timeout=300)
        assert killed.is_set() and first.returncode == -signal.SIGKILL, first.stderr.read()
        # replies that reached the job were cached before use; requests in flight were not
        paid_for = len(list(cache_dir.rglob("*.json")))
        sent_before = len(bodies(server))
        server.route = answered
        second = job(server, run_dir, cache_dir, data_dir)
        assert second.wait(timeout=300) == 0, second.stderr.read()
        sent_after = len(bodies(server)) - sent_before
    assert outcome(run_dir) == expected
    assert paid_for >= kill_at_request - 4  # at most 4 requests are in flight together here
    assert sent_after == reference_requests - paid_for  # no reply it had was asked for again


def test_a_finished_job_rerun_is_a_no_op(data_dir, tmp_path):
    with OpenAIServer(deep_reply, model="m") as server:
        assert job(server, tmp_path / "run", tmp_path / "cache", data_dir).wait(timeout=300) == 0
        requests = len(bodies(server))
        programs = (tmp_path / "run" / "programs.jsonl").read_text()
        again = job(server, tmp_path / "run", tmp_path / "cache", data_dir)
        stdout, _ = again.communicate(timeout=300)
        assert again.returncode == 0 and len(bodies(server)) == requests
    assert "solved" in stdout and (tmp_path / "run" / "programs.jsonl").read_text() == programs


def test_a_torn_last_line_is_cut_and_the_program_made_again(data_dir, tmp_path):
    with OpenAIServer(deep_reply, model="m") as server:
        run_dir = tmp_path / "run"
        assert job(server, run_dir, tmp_path / "cache", data_dir).wait(timeout=300) == 0
        expected = outcome(run_dir)
        lines = (run_dir / "programs.jsonl").read_text().splitlines(keepends=True)
        (run_dir / "programs.jsonl").write_text("".join(lines[:3]) + lines[3][:40])  # killed mid-write
        (run_dir / "result.json").unlink()
        requests = len(bodies(server))
        assert job(server, run_dir, tmp_path / "cache", data_dir).wait(timeout=300) == 0
        assert len(bodies(server)) == requests  # everything came from the cache
    assert outcome(run_dir) == expected


def test_a_killed_job_continues_its_git_branch_and_its_wandb_run(data_dir, tmp_path):
    """With the archive and W&B on, the rerun builds on the killed job's branch (every program in
    it once, as recorded) and logs to the same W&B run, and the archive stays a sound repository."""
    run_dir, cache_dir, archive = tmp_path / "run", tmp_path / "cache", tmp_path / "archive"
    tracking = (f"tracking.git.path={archive}", "tracking.git.commit_every=2", "tracking.wandb.mode=offline")
    with OpenAIServer(deep_reply, model="m") as server:
        answered = server.route
        first = job(server, run_dir, cache_dir, data_dir, *tracking)
        killed = kill_at(server, first, 10)
        first.wait(timeout=300)
        assert killed.is_set() and first.returncode == -signal.SIGKILL, first.stderr.read()
        repo = git.Repo(archive)
        [branch] = [ref.path for ref in repo.refs if ref.path.startswith("refs/heads/seidr/")]
        killed_tip = repo.git.rev_parse(branch)
        wandb_ids = {folder.name.rsplit("-", 1)[1] for folder in (run_dir / "wandb").glob("offline-run-*")}
        assert len(wandb_ids) == 1  # the killed job had started its W&B run
        server.route = answered
        second = job(server, run_dir, cache_dir, data_dir, *tracking)
        stdout, stderr = second.communicate(timeout=300)
        assert second.returncode == 0, stderr
    assert "is off for this run" not in stdout + stderr  # neither tracker gave up
    programs = [json.loads(line) for line in (run_dir / "programs.jsonl").read_text().splitlines()]
    assert [p["id"] for p in programs] == list(range(len(programs)))
    # the same branch, continued from where the killed job left it
    assert [ref.path for ref in repo.refs if ref.path.startswith("refs/heads/seidr/")] == [branch]
    repo.git.merge_base("--is-ancestor", killed_tip, branch)  # raises if the branch was restarted
    assert repo.git.rev_parse(branch) != killed_tip
    files = repo.git.ls_tree("-r", "--name-only", branch, "programs/").splitlines()
    assert files == [f"programs/{p['id']:04d}.py" for p in programs]
    for program in programs:
        assert repo.git.show(f"{branch}:programs/{program['id']:04d}.py") == program["code"].rstrip("\n")
    # across the branch's history each program file was written once: the replay changed none
    touched = repo.git.log("--format=", "--name-only", branch, "--", "programs/").split()
    assert sorted(touched) == files
    assert repo.git.show(f"{branch}:programs.jsonl") == (run_dir / "programs.jsonl").read_text().rstrip("\n")
    assert json.loads(repo.git.show(f"{branch}:result.json"))["solved"]
    fsck = subprocess.run(["git", "fsck", "--strict"], cwd=archive, capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    # one W&B run id, the killed job's, and the resumed job finished that run
    runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert {folder.name.rsplit("-", 1)[1] for folder in runs} == wandb_ids
    assert any(b"test_pass_rate" in log.read_bytes() for folder in runs for log in folder.glob("run-*.wandb"))


def stopping_server(reply):
    """A server that answers drafts and fails every explanation: the job stops on an error after
    its drafts, and a rerun in its folder would resume it."""
    server = OpenAIServer(reply, model="m")
    answered = server.route

    def route(method, path, body):
        if method == "POST" and "Do not write code" in body["messages"][-1]["content"]:
            return 500, {"error": {"message": "server on fire"}}, {}
        return answered(method, path, body)

    server.route = route
    return server


def test_a_folder_holding_a_different_run_is_refused(data_dir, tmp_path):
    """A rerun whose programs differ from those the folder recorded is not mixed into them."""
    run_dir = tmp_path / "run"
    with stopping_server(lambda messages, body, index: f"```python\nprint({index})\n```") as server:
        stopped = job(server, run_dir, tmp_path / "cache", data_dir)
        assert stopped.wait(timeout=300) != 0
    recorded = (run_dir / "programs.jsonl").read_text()
    assert json.loads((run_dir / "result.json").read_text())["stopped"] == "error" and recorded
    with OpenAIServer(deep_reply, model="m") as server:  # another model's programs
        proc = job(server, run_dir, tmp_path / "cache", data_dir)
        _, stderr = proc.communicate(timeout=300)
    line = assert_one_clear_error(subprocess.CompletedProcess(proc.args, proc.returncode, "", stderr),
                                  "holds a different run", "program 0 differs")
    assert str(run_dir / "programs.jsonl") in line
    assert (run_dir / "programs.jsonl").read_text() == recorded


def test_a_folder_is_refused_to_another_problem(data_dir, tmp_path):
    """The same code for another problem is still another run: its verdicts were on other tests."""
    run_dir = tmp_path / "run"

    def stopped_job(problem: str) -> subprocess.CompletedProcess:
        with stopping_server(lambda messages, body, index: f"```python\nprint({index})\n```") as server:
            proc = job(server, run_dir, tmp_path / "cache", data_dir, f"problem={problem}")
            _, stderr = proc.communicate(timeout=300)
        return subprocess.CompletedProcess(proc.args, proc.returncode, "", stderr)

    assert stopped_job("fizz-buzz").returncode != 0
    recorded = (run_dir / "programs.jsonl").read_text()
    assert recorded
    assert_one_clear_error(stopped_job("gcd"), "holds a different job", "problem: 'fizz-buzz' there, 'gcd' now")
    assert (run_dir / "programs.jsonl").read_text() == recorded


def test_a_refused_resume_leaves_the_earlier_result_as_it_was(data_dir, tmp_path):
    """The refused rerun's first program solves: it is not the folder's, so no solve is written."""
    run_dir = tmp_path / "run"
    with stopping_server(lambda messages, body, index: f"```python\nprint({index})\n```") as server:
        assert job(server, run_dir, tmp_path / "cache", data_dir).wait(timeout=300) != 0
    result, recorded = (run_dir / "result.json").read_bytes(), (run_dir / "programs.jsonl").read_bytes()
    with OpenAIServer(lambda messages, body, index: f"```python\n{RIGHT}```", model="m") as server:
        proc = job(server, run_dir, tmp_path / "cache", data_dir)
        _, stderr = proc.communicate(timeout=300)
    assert_one_clear_error(subprocess.CompletedProcess(proc.args, proc.returncode, "", stderr),
                           "holds a different run", "program 0 differs")
    assert proc.returncode == 2
    assert (run_dir / "result.json").read_bytes() == result
    assert (run_dir / "programs.jsonl").read_bytes() == recorded


KILLED_BEFORE_TRACKING = ("import os, runpy, signal, sys\n"
                          "import seidr.tracking.trackers as trackers\n"
                          "trackers.Trackers.finish = lambda *args: os.kill(os.getpid(), signal.SIGKILL)\n"
                          "sys.argv[0] = {main!r}\n"
                          "runpy.run_path({main!r}, run_name='__main__')\n")


def test_a_job_killed_before_its_tracking_finished_is_finished_by_its_rerun(data_dir, tmp_path):
    """Killed right after result.json: the rerun makes the archive's last commit and `best/` tag
    and W&B's summary, asks the model nothing and rewrites no record; then the job is done."""
    run_dir, cache_dir, archive = tmp_path / "run", tmp_path / "cache", tmp_path / "archive"
    tracking = (f"tracking.git.path={archive}", "tracking.wandb.mode=offline")
    with OpenAIServer(deep_reply, model="m") as server:
        args = job_args(server, run_dir, cache_dir, data_dir, *tracking)
        args[1:2] = ["-c", KILLED_BEFORE_TRACKING.format(main=str(REPO_ROOT / "main.py"))]
        first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env={k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}, cwd=REPO_ROOT)
        assert first.wait(timeout=300) == -signal.SIGKILL, first.stderr.read()
        records = {name: (run_dir / name).read_bytes() for name in ("result.json", "programs.jsonl")}
        repo = git.Repo(archive)
        assert not repo.tags  # the kill came before the archive's last commit
        requests = len(bodies(server))
        second = job(server, run_dir, cache_dir, data_dir, *tracking)
        stdout, stderr = second.communicate(timeout=300)
        assert second.returncode == 0, stderr
        assert len(bodies(server)) == requests
        third = job(server, run_dir, cache_dir, data_dir, *tracking)
        assert third.wait(timeout=300) == 0
    assert {name: (run_dir / name).read_bytes() for name in records} == records
    [tag] = repo.tags
    assert json.loads(repo.git.show(f"{tag.commit.hexsha}:result.json")) == json.loads(records["result.json"])
    runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert any(b"test_pass_rate" in log.read_bytes() for folder in runs for log in folder.glob("run-*.wandb"))
    branch = tag.path.replace("refs/tags/best/", "refs/heads/", 1)
    assert repo.git.rev_parse(branch) == tag.commit.hexsha  # the third run added nothing
    assert not (run_dir / "tracking_pending.json").exists()


def folder_state(run_dir) -> dict:
    """Every file of a run folder and its bytes (the lock file holds the pid of its last job)."""
    return {str(path.relative_to(run_dir)): path.read_bytes() for path in sorted(run_dir.rglob("*"))
            if path.is_file() and path.name != ".seidr.lock"}


@pytest.mark.parametrize("refused_by", ["seed=1", "replies"])
def test_a_refused_rerun_leaves_the_folder_exactly_as_it_was(data_dir, tmp_path, refused_by):
    """Refused by its config (job.json) or by its first program: no .hydra file, log line or record changes."""
    run_dir = tmp_path / "run"
    with OpenAIServer(deep_reply, model="m") as server:
        assert job(server, run_dir, tmp_path / "cache", data_dir).wait(timeout=300) == 0
    before = folder_state(run_dir)
    assert {".hydra/config.yaml", ".hydra/overrides.yaml", "main.log", "job.json", "result.json"} <= set(before)
    if refused_by == "replies":
        (run_dir / "result.json").unlink()  # the job stopped before its end: its rerun resumes it
        before = folder_state(run_dir)
    more = ("seed=1",) if refused_by == "seed=1" else ("model.cache=false",)
    with OpenAIServer(lambda messages, body, index: f"```python\n{RIGHT}```", model="m") as server:
        proc = job(server, run_dir, tmp_path / "cache", data_dir, *more)
        _, stderr = proc.communicate(timeout=300)
    assert_one_clear_error(subprocess.CompletedProcess(proc.args, proc.returncode, "", stderr),
                           "holds a different job" if refused_by == "seed=1" else "holds a different run")
    assert proc.returncode == 2
    after = folder_state(run_dir)
    if refused_by == "replies":  # the calls it paid for before its first program differed are still counted
        paid = [json.loads(state.pop("llm_usage.json"))["llm_calls"] for state in (before, after)]
        assert paid[1] > paid[0]
    assert after == before


def test_jobs_started_together_get_their_own_default_folders(data_dir, tmp_path):
    with OpenAIServer(lambda messages, body, index: f"```python\n{RIGHT}```", model="m") as server:
        args = job_args(server, tmp_path / "unused", tmp_path / "cache", data_dir, f"paths.output_root={tmp_path}")
        args = [arg for arg in args if not arg.startswith("hydra.run.dir=")]
        env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
        jobs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                 cwd=REPO_ROOT) for _ in range(2)]
        assert all(process.wait(timeout=300) == 0 for process in jobs), [p.stderr.read() for p in jobs]
    folders = {path.parent for path in (tmp_path / "runs").rglob("result.json")}
    assert len(folders) == 2
    assert all(len((folder / "programs.jsonl").read_text().splitlines()) == 1 for folder in folders)


def test_a_job_that_failed_before_its_first_program_claims_nothing(data_dir, tmp_path):
    """The server fails the first request: the folder is not marked as that job's, so the same
    folder takes the job with another model (and is not left behind empty meanwhile)."""
    run_dir = tmp_path / "run"
    with OpenAIServer(deep_reply, model="m") as server:
        server.route = lambda method, path, body: (500, {"error": {"message": "server on fire"}}, {})
        failed = job(server, run_dir, tmp_path / "cache", data_dir)
        _, stderr = failed.communicate(timeout=300)
        assert failed.returncode == 2, stderr
    assert not run_dir.exists()
    with OpenAIServer(deep_reply, model="other") as server:
        done = job(server, run_dir, tmp_path / "cache", data_dir, "model.name=other")
        _, stderr = done.communicate(timeout=300)
    assert done.returncode == 0, stderr
    assert json.loads((run_dir / "job.json").read_text())["model"] == "other"
