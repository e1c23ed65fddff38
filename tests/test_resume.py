"""Durability: a job killed at any point resumes where it stopped, pays for nothing twice, and
ends exactly as a run that was never interrupted."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from seidr.config import REPO_ROOT
from tests.servers.openai_server import OpenAIServer
from tests.test_cli import run_main

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
        "search.max_programs=40", "tracking=none"]


def job(server, run_dir, cache_dir, data_dir) -> subprocess.Popen:
    args = [sys.executable, str(REPO_ROOT / "main.py"), *ARGS, f"model.base_url={server.base_url}",
            f"hydra.run.dir={run_dir}", f"model.cache_dir={cache_dir}", f"paths.data_dir={data_dir}"]
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


@pytest.mark.parametrize("kill_at_request", [2, 4, 7, 10])
def test_killed_job_resumes_to_the_same_result_without_repeating_calls(reference, data_dir, tmp_path,
                                                                        kill_at_request):
    (expected, reference_requests) = reference
    assert kill_at_request < reference_requests
    run_dir, cache_dir = tmp_path / "run", tmp_path / "cache"
    with OpenAIServer(deep_reply, model="m") as server:
        first = job(server, run_dir, cache_dir, data_dir)
        answered = server.route

        def route(method, path, body):
            if path.endswith("/chat/completions") and len(server.posts("/v1/chat/completions")) == kill_at_request:
                first.send_signal(signal.SIGKILL)  # the job dies with this request in flight
                time.sleep(0.5)
            return answered(method, path, body)

        server.route = route
        first.wait(timeout=300)
        assert first.returncode == -signal.SIGKILL
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
