"""Tracking: the git archive (local, pushed to a bare remote on disk, shared by concurrent jobs)
and W&B (offline files; a broken W&B only warns)."""

from __future__ import annotations

import json
import logging
import signal
import socket
import subprocess
import sys

import git
import pytest

from seidr.config import REPO_ROOT
from seidr.execution.base import TestOutcome
from seidr.search.tree import Program
from seidr.tracking.gitlog import GitArchive, branch_name
from tests.servers.openai_server import OpenAIServer
from tests.test_cli import read_run, run_main, seidr_reply

BASE = ["model=openai", "model.name=m", "model.api_key=k", "search.max_programs=12", "model.cache=false"]


def archive_args(path, *more):
    return ["tracking.wandb=null", f"tracking.git.path={path}", "tracking.git.commit_every=3", *more]


def test_git_archive_commits_programs_result_and_tags_the_best(data_dir, tmp_path):
    with OpenAIServer(seidr_reply, model="m") as server:
        proc = run_main(*BASE, f"model.base_url={server.base_url}", *archive_args(tmp_path / "archive"),
                        data_dir=data_dir, output_root=tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    result, programs = read_run(tmp_path / "out")
    repo = git.Repo(tmp_path / "archive")
    [branch] = [ref for ref in repo.refs if ref.path.startswith("refs/heads/seidr/psb2/fizz-buzz/python/")]
    files = repo.git.ls_tree("-r", "--name-only", branch.path).splitlines()
    assert sorted(f for f in files if f.startswith("programs/")) == [f"programs/{p['id']:04d}.py" for p in programs]
    assert {"programs.jsonl", "result.json", "best.py"} <= set(files)
    assert json.loads(repo.git.show(f"{branch.path}:result.json"))["solved"] == result["solved"]
    assert repo.git.show(f"{branch.path}:best.py") == result["best_program"].rstrip("\n")
    head = branch.commit
    assert "solved" in head.message and "best score 1.000" in head.message
    assert len(list(repo.iter_commits(branch.path))) >= 2  # batches, then the final commit
    assert repo.tags[f"best/{branch.path[len('refs/heads/'):]}"].commit == head


def test_push_to_a_bare_remote_and_a_failed_push_is_caught_up_later(data_dir, tmp_path):
    remote = tmp_path / "remote.git"
    git.Repo.init(remote, bare=True)
    with OpenAIServer(seidr_reply, model="m") as server:
        url = f"model.base_url={server.base_url}"
        down = run_main(*BASE, url, *archive_args(tmp_path / "archive", f"tracking.git.remote={tmp_path / 'nowhere'}",
                                                  "tracking.git.push_retries=1"), "problem=gcd",
                        data_dir=data_dir, output_root=tmp_path / "out1")
        assert down.returncode == 0, down.stderr
        assert "push to" in down.stdout + down.stderr and "failed" in down.stdout + down.stderr
        assert not [r for r in git.Repo(remote).refs]
        up = run_main(*BASE, url, *archive_args(tmp_path / "archive", f"tracking.git.remote={remote}"),
                      data_dir=data_dir, output_root=tmp_path / "out2")
        assert up.returncode == 0, up.stderr
    pushed = {ref.path for ref in git.Repo(remote).refs}
    assert any("/fizz-buzz/" in ref for ref in pushed) and any("/gcd/" in ref for ref in pushed)


def test_concurrent_jobs_share_one_archive_safely(data_dir, tmp_path):
    with OpenAIServer(seidr_reply, model="m") as server:
        def start(problem, out):
            args = [sys.executable, str(REPO_ROOT / "main.py"), *BASE, f"model.base_url={server.base_url}",
                    *archive_args(tmp_path / "archive", "tracking.git.commit_every=1"), f"problem={problem}",
                    f"paths.data_dir={data_dir}", f"paths.output_root={out}"]
            return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)

        jobs = [start(problem, tmp_path / problem) for problem in ("fizz-buzz", "gcd", "luhn")]
        for job in jobs:
            assert job.wait(timeout=300) == 0, job.stderr.read()
    repo = git.Repo(tmp_path / "archive")
    assert len([r for r in repo.refs if r.path.startswith("refs/heads/seidr/")]) == 3
    fsck = subprocess.run(["git", "fsck", "--strict"], cwd=tmp_path / "archive", capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr


def test_wandb_offline_run_has_metrics_summary_and_program_table(data_dir, tmp_path):
    with OpenAIServer(seidr_reply, model="m") as server:
        proc = run_main(*BASE, f"model.base_url={server.base_url}", "tracking.git=null",
                        "tracking.wandb.mode=offline", data_dir=data_dir, output_root=tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    result, programs = read_run(tmp_path / "out")
    [run_dir] = list((tmp_path / "out").rglob("offline-run-*"))
    [table] = list(run_dir.rglob("programs_*.table.json"))
    rows = json.loads(table.read_text())["data"]
    assert [row[0] for row in rows] == [p["id"] for p in programs]
    assert [row[4] for row in rows] == [p["val_score"] for p in programs]
    # the offline log is W&B's binary record stream; this W&B version ships no reader for it, so
    # check that every metric and summary key and the config went in
    [log_file] = list(run_dir.glob("run-*.wandb"))
    records = log_file.read_bytes()
    for key in (b"best_score", b"best_pass_rate", b"pass_rate", b"llm_calls", b"prompt_tokens", b"test_pass_rate",
                b"solved", b"branching_factor", b"fizz-buzz"):
        assert key in records, key


def test_a_broken_wandb_is_a_warning_not_a_lost_run(data_dir, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    with OpenAIServer(seidr_reply, model="m") as server:
        proc = run_main(*BASE, f"model.base_url={server.base_url}", "tracking.git=null",
                        "tracking.wandb.mode=online", "tracking.wandb.init_timeout_s=5", data_dir=data_dir,
                        output_root=tmp_path / "out",
                        env={"WANDB_BASE_URL": f"http://127.0.0.1:{dead}", "WANDB_API_KEY": "x" * 40})
    assert proc.returncode == 0, proc.stderr
    assert "W&B is off for this run" in proc.stdout + proc.stderr
    result, _ = read_run(tmp_path / "out")
    assert result["solved"]


def test_concurrent_jobs_with_the_same_config_each_keep_their_own_branch(data_dir, tmp_path):
    """Three copies of one job (one config, one archive, three run folders) at once: none loses a
    program to another, and the archive stays sound."""
    with OpenAIServer(seidr_reply, model="m") as server:
        def start(out):
            args = [sys.executable, str(REPO_ROOT / "main.py"), *BASE, f"model.base_url={server.base_url}",
                    *archive_args(tmp_path / "archive", "tracking.git.commit_every=1"), "problem=fizz-buzz",
                    f"paths.data_dir={data_dir}", f"paths.output_root={out}"]
            return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    cwd=REPO_ROOT)

        jobs = [start(tmp_path / f"out{n}") for n in range(3)]
        for job in jobs:
            out, err = job.communicate(timeout=300)
            assert job.returncode == 0, err
            assert "git archive" not in out + err  # neither off nor warning
    repo = git.Repo(tmp_path / "archive")
    branches = [r.path for r in repo.refs if r.path.startswith("refs/heads/seidr/psb2/fizz-buzz/python/")]
    assert len(branches) == 3
    assert len({b.rsplit("-", 1)[0] for b in branches}) == 1  # one config hash, three runs
    archived = sorted(sorted(f for f in repo.git.ls_tree("-r", "--name-only", b).splitlines()
                             if f.startswith("programs/")) for b in branches)
    recorded = sorted(sorted(f"programs/{p['id']:04d}.py" for p in read_run(tmp_path / f"out{n}")[1])
                      for n in range(3))
    assert archived == recorded
    fsck = subprocess.run(["git", "fsck", "--strict"], cwd=tmp_path / "archive", capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr


def test_branch_name_is_per_run_folder_and_stable_for_a_resume(tmp_path):
    config = {"model": "m", "seed": 0}
    first = branch_name("psb2", "fizz-buzz", "python", config, tmp_path / "run1")
    assert first == branch_name("psb2", "fizz-buzz", "python", config, tmp_path / "run1")
    assert first != branch_name("psb2", "fizz-buzz", "python", config, tmp_path / "run2")
    assert first.rsplit("-", 1)[0] == branch_name("psb2", "fizz-buzz", "python", config,
                                                  tmp_path / "run2").rsplit("-", 1)[0]


def _program(number: int) -> Program:
    return Program(id=number, parent_id=None, kind="draft", generation=0, code=f"print({number})\n",
                   outcomes=(TestOutcome("pass", 1.0),))


def _archived(repo: git.Repo, branch: str) -> set[str]:
    return set(repo.git.ls_tree("-r", "--name-only", f"refs/heads/{branch}").splitlines())


def test_a_branch_moved_under_the_archive_is_built_on_not_fatal(tmp_path):
    branch = "seidr/psb2/p/python/cfg-run"
    jsonl = tmp_path / "programs.jsonl"
    jsonl.write_text("{}\n")
    archive = GitArchive(tmp_path / "archive", branch, "py", commit_every=100)
    archive.add_program(_program(0), jsonl)
    first = archive.commit(jsonl, "1 program")
    # between this job's two commits another writer moves the branch (its compare-and-swap wins)
    other = GitArchive(tmp_path / "archive", branch, "py", commit_every=100)
    other.add_program(_program(7), jsonl)
    theirs = other.commit(jsonl, "another writer")
    archive.add_program(_program(1), jsonl)
    ours = archive.commit(jsonl, "2 programs")
    assert ours is not None and archive.commits == 2
    repo = git.Repo(tmp_path / "archive")
    assert repo.commit(f"refs/heads/{branch}").hexsha == ours
    assert [c.hexsha for c in repo.iter_commits(ours)] == [ours, theirs, first]
    assert {"programs/0000.py", "programs/0001.py", "programs/0007.py"} <= _archived(repo, branch)


def test_a_branch_that_cannot_move_warns_and_commits_later(tmp_path, caplog):
    branch = "seidr/psb2/p/python/cfg-run"
    jsonl = tmp_path / "programs.jsonl"
    jsonl.write_text("{}\n")
    archive = GitArchive(tmp_path / "archive", branch, "py", commit_every=100)
    archive.add_program(_program(0), jsonl)
    archive.commit(jsonl, "1 program")
    # a lock git leaves on the ref while another process updates it: every update is refused
    lock = tmp_path / "archive" / "refs" / "heads" / f"{branch}.lock"
    lock.write_text("")
    archive.add_program(_program(1), jsonl)
    with caplog.at_level(logging.WARNING, logger="seidr.tracking"):
        assert archive.commit(jsonl, "2 programs") is None
    assert "could not move branch" in caplog.text and "tries again" in caplog.text
    lock.unlink()
    archive.add_program(_program(2), jsonl)
    assert archive.commit(jsonl, "3 programs") is not None
    repo = git.Repo(tmp_path / "archive")
    assert {"programs/0000.py", "programs/0001.py", "programs/0002.py"} <= _archived(repo, branch)


# Task names git refuses in a ref, or that a careless mapping would give one branch
HOSTILE_NAMES = ["a..b", "..", ".", ".hidden", "x.lock", "x.lock/", "a/b", "/lead", "trail/", "a//b", "@", "a@{1}",
                 "back\\slash", "sp ace", "tab\t", "ctl\x01\x7f", "q?*[", "~^:", "-dash", "", "ünïcødé", "x" * 300,
                 "x" * 299, "HumanEval/0", "HumanEval_0", "HumanEval-0", "a.b", "a-b", "a_b", "fizz-buzz"]


def test_branch_names_are_valid_and_distinct_for_hostile_task_names(tmp_path):
    config = {"model": "m", "seed": 0}
    branches = [branch_name(name, name, name, config, tmp_path / "run") for name in HOSTILE_NAMES]
    assert len(set(branches)) == len(HOSTILE_NAMES)  # no two task names share a branch
    for name, branch in zip(HOSTILE_NAMES, branches):
        check = subprocess.run(["git", "check-ref-format", f"refs/heads/{branch}"], capture_output=True)
        assert check.returncode == 0, (name, branch)
        assert branch.startswith("seidr/") and branch.count("/") == 4, (name, branch)
    plain = branch_name("psb2", "fizz-buzz", "python", config, tmp_path / "run")
    assert plain.startswith("seidr/psb2/fizz-buzz/python/")  # a name git takes is kept as it is


def test_a_hostile_task_name_is_archived_on_its_own_branch(tmp_path, caplog):
    jsonl = tmp_path / "programs.jsonl"
    jsonl.write_text("{}\n")
    with caplog.at_level(logging.WARNING, logger="seidr.tracking"):
        for number, name in enumerate(["a..b", "x.lock", "a@{1}", ".hidden"]):
            branch = branch_name("psb2", name, "python", {}, tmp_path / "run")
            archive = GitArchive(tmp_path / "archive", branch, "py", commit_every=100)
            archive.add_program(_program(number), jsonl)
            assert archive.commit(jsonl, f"program {number}") is not None, name
    assert caplog.text == ""
    repo = git.Repo(tmp_path / "archive")
    assert len([ref for ref in repo.refs if ref.path.startswith("refs/heads/seidr/psb2/")]) == 4


@pytest.mark.parametrize("spoiled", ["a file", "a broken config"])
def test_an_archive_switched_off_names_its_path_and_the_cause_in_one_line(data_dir, tmp_path, spoiled):
    archive = tmp_path / "archive"
    if spoiled == "a file":
        archive.write_text("not a repository\n")
        cause = "is a file, not a folder"
    else:
        git.Repo.init(archive, bare=True)
        (archive / "config").write_text("[[[ not a git config\n")
        cause = "no section headers"
    with OpenAIServer(seidr_reply, model="m") as server:
        proc = run_main(*BASE, f"model.base_url={server.base_url}", *archive_args(archive),
                        data_dir=data_dir, output_root=tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output
    [line] = [line for line in output.splitlines() if "is off for this run" in line]
    assert f"git archive {archive} is off for this run: " in line and cause in line, line
    result, programs = read_run(tmp_path / "out")  # the run went on without the archive
    assert result["solved"] and programs


def test_a_failed_git_command_is_told_by_what_git_said(tmp_path):
    from seidr.tracking.trackers import cause

    archive = GitArchive(tmp_path / "archive", "seidr/psb2/p/python/cfg-run", "py")
    with pytest.raises(subprocess.CalledProcessError) as missing_object:
        archive._mktree({"0000.py": ("100644", "1" * 40)})
    assert cause(missing_object.value) == f"fatal: entry '0000.py' object {'1' * 40} is unavailable"
    with pytest.raises(git.GitCommandError) as bad_name:
        archive.repo.git.update_ref("refs/heads/a..b", "1" * 40)
    assert cause(bad_name.value).startswith("fatal: update_ref failed for ref 'refs/heads/a..b'")
    assert cause(OSError(28, "No space left on device")) == "[Errno 28] No space left on device"


def test_a_job_killed_and_resumed_again_and_again_commits_each_program_once(data_dir, tmp_path):
    """Three kills, three resumes, one commit per program (commit_every=1) and one for the result:
    a resumed job's replay of the programs the archive already holds commits nothing."""
    from tests.test_resume import bodies, deep_reply, job, kill_at

    run_dir, cache_dir, archive = tmp_path / "run", tmp_path / "cache", tmp_path / "archive"
    tracking = (f"tracking.git.path={archive}", "tracking.git.commit_every=1", "tracking.wandb=null")
    with OpenAIServer(deep_reply, model="m") as server:
        answered = server.route
        for _ in range(3):
            process = job(server, run_dir, cache_dir, data_dir, *tracking)
            killed = kill_at(server, process, len(bodies(server)) + 3)  # three new requests in
            process.wait(timeout=300)
            assert killed.is_set() and process.returncode == -signal.SIGKILL, process.stderr.read()
            server.route = answered
        last = job(server, run_dir, cache_dir, data_dir, *tracking)
        _, stderr = last.communicate(timeout=300)
        assert last.returncode == 0, stderr
    programs = [json.loads(line) for line in (run_dir / "programs.jsonl").read_text().splitlines()]
    repo = git.Repo(archive)
    [branch] = [ref.path for ref in repo.refs if ref.path.startswith("refs/heads/seidr/")]
    # newest first: the result, then each program in turn, back to program 0
    added = [repo.git.show("--format=", "--name-only", "--diff-filter=A", commit.hexsha, "--",
                           "programs/").split() for commit in repo.iter_commits(branch)]
    assert added == [[]] + [[f"programs/{p['id']:04d}.py"] for p in reversed(programs)]
    assert json.loads(repo.git.show(f"{branch}:result.json"))["solved"]


def test_a_replayed_program_or_an_unchanged_tree_makes_no_commit(tmp_path):
    branch = "seidr/psb2/p/python/cfg-run"
    jsonl = tmp_path / "programs.jsonl"
    jsonl.write_text("{}\n")
    first = GitArchive(tmp_path / "archive", branch, "py", commit_every=1)
    for number in range(3):
        first.add_program(_program(number), jsonl)
    tip = first.commit(jsonl, "3 programs")
    assert first.commits == 3 and tip is not None
    assert first.commit(jsonl, "nothing new") == tip and first.commits == 3  # the same tree: no commit
    # a resumed job replays the three (its programs.jsonl has grown meanwhile): nothing to commit
    jsonl.write_text("{}\n{}\n")
    resumed = GitArchive(tmp_path / "archive", branch, "py", commit_every=1)
    for number in range(3):
        resumed.add_program(_program(number), jsonl)
    repo = git.Repo(tmp_path / "archive")
    assert resumed.commits == 0 and repo.commit(f"refs/heads/{branch}").hexsha == tip
    resumed.add_program(_program(3), jsonl)  # a new program is committed, with the grown file
    assert resumed.commits == 1 and repo.git.show(f"refs/heads/{branch}:programs.jsonl") == "{}\n{}"
    assert len(list(repo.iter_commits(f"refs/heads/{branch}"))) == 4
