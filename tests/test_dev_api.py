"""seidr as a library: `from seidr import dev`."""

from __future__ import annotations

import asyncio

import pytest

from seidr import dev
from seidr.config import REPO_ROOT
from seidr.data.jsonl import JsonlDataset
from seidr.errors import SeidrError
from tests.scripted import ScriptedBackend
from tests.servers.openai_server import OpenAIServer
from tests.test_cli import read_run, run_main

# the scripted replies differ between tests while the prompts do not: no replay across tests
NO_CACHE = ["model.cache=false", "tracking=none"]
DOUBLE_WRONG = "```python\nprint(int(input()) + 2)\n```"
DOUBLE_RIGHT = "```python\nprint(int(input()) * 2)\n```"


def double_reply(step: str) -> str:
    return {"draft": DOUBLE_WRONG, "explain": "It adds 2 instead of doubling."}.get(step, DOUBLE_RIGHT)


def test_develop_solves_a_task_with_a_scripted_model(tmp_path):
    backend = ScriptedBackend(lambda step, messages, index: double_reply(step))
    result = dev.develop("Read an integer and print twice its value.", examples=[("2", "4"), ("-5", "-10"), (0, 0)],
                         tests=[("21", "42")], model=backend, max_programs=10, output_dir=tmp_path,
                         overrides=NO_CACHE)
    assert result.solved and result.code == "print(int(input()) * 2)\n" and result.test_pass_rate == 1.0
    assert [p.kind for p in result.programs] == ["draft", "draft", "repair"]
    assert result.programs[-1].explanation == "It adds 2 instead of doubling."
    assert result.usage.calls == len(backend.requests) and (tmp_path / "result.json").is_file()
    assert "solved=True" in repr(result)


def test_a_repair_identical_to_its_parent_is_not_run_again(tmp_path):
    backend = ScriptedBackend(lambda step, messages, index: "It is wrong." if step == "explain" else DOUBLE_WRONG)
    result = dev.develop("Read an integer and print twice its value.", examples=[("2", "4"), ("-5", "-10")],
                         tests=[("21", "42")], model=backend, max_programs=2, drafts_per_prompt=1, output_dir=tmp_path, overrides=NO_CACHE)
    assert [p.kind for p in result.programs] == ["draft", "repair"]
    assert result.result["cached_verdicts"] == 2  # both validation tests of the repair, from the draft's run
    assert result.programs[1].outcomes == result.programs[0].outcomes


def test_develop_takes_a_signature_with_asserts(tmp_path):
    code = "```python\ndef is_even(n):\n    return n % 2 == 0\n```"
    backend = ScriptedBackend(lambda step, messages, index: code)
    result = dev.develop(signature="def is_even(n: int) -> bool:\n    \"\"\"Whether n is even.\"\"\"\n",
                         asserts=["assert is_even(2)", "assert not is_even(3)"], hidden_asserts=["assert is_even(0)"],
                         model=backend, output_dir=tmp_path, overrides=NO_CACHE)
    assert result.solved and result.test_pass_rate == 1.0 and result.result["split"] == "heldout"


def test_develop_works_inside_a_running_event_loop(tmp_path):
    backend = ScriptedBackend(lambda step, messages, index: DOUBLE_RIGHT)

    async def notebook_cell():
        return dev.develop("Double it.", examples=[("1", "2")], model=backend, output_dir=tmp_path, overrides=NO_CACHE)

    assert asyncio.run(notebook_cell()).solved


def test_adevelop_is_awaitable(tmp_path):
    backend = ScriptedBackend(lambda step, messages, index: DOUBLE_RIGHT)
    assert asyncio.run(dev.adevelop("Double it.", examples=[("1", "2")], model=backend, output_dir=tmp_path, overrides=NO_CACHE)).solved


def test_a_critic_judges_outputs_in_seidrs_own_process(tmp_path):
    # any divisor of n other than 1 and n is a right answer
    seen = []

    def any_divisor(test_input: str, expected: str, actual: str) -> float:
        seen.append(actual)
        n, d = int(test_input), int(actual.strip() or 0)
        return 1.0 if 1 < d < n and n % d == 0 else 0.0

    program = "```python\nn = int(input())\nprint(max(d for d in range(2, n) if n % d == 0))\n```"
    backend = ScriptedBackend(lambda step, messages, index: program)
    result = dev.develop("Print a proper divisor of n.", examples=[("12", "2"), ("15", "3")], model=backend,
                         critic=any_divisor, output_dir=tmp_path, overrides=NO_CACHE)
    assert result.solved and seen[:2] == ["6\n", "5\n"]  # exact comparison would have failed both


def test_bad_task_is_refused_with_the_reason():
    with pytest.raises(SeidrError, match="give either"):
        dev.develop("no examples at all")
    with pytest.raises(SeidrError, match='"examples"'):
        dev.develop("x", examples=[("1", "2", "3")])


def test_api_and_cli_give_the_same_result_for_the_same_seed(data_dir, tmp_path):
    def reply(messages, body, index):
        step = "explain" if "Do not write code" in messages[-1]["content"] else (
            "repair" if "according to a review" in messages[-1]["content"] else "draft")
        return double_reply(step)

    with OpenAIServer(reply, model="m") as server:
        overrides = ["model=openai", "model.name=m", "model.api_key=k", f"model.base_url={server.base_url}",
                     "seed=3", "search.max_programs=12", *NO_CACHE]
        proc = run_main("dataset=jsonl", "problem=double", *overrides, data_dir=data_dir,
                        output_root=tmp_path / "cli")
        assert proc.returncode == 0, proc.stderr
        cli_result, cli_programs = read_run(tmp_path / "cli")
        task = JsonlDataset(REPO_ROOT / "examples" / "tasks.jsonl").tasks()["double"]
        api = dev.develop(task["description"], examples=[(e["input"], e["output"]) for e in task["examples"]],
                          tests=[(e["input"], e["output"]) for e in task["tests"]], name="double", seed=3,
                          overrides=overrides[1:], model="openai", max_programs=12, output_dir=tmp_path / "api")
    for key in ("solved", "val_score", "test_pass_rate", "programs", "llm_calls", "best_program", "prompt_tokens"):
        assert api.result[key] == cli_result[key], key
    assert [p.code for p in api.programs] == [p["code"] for p in cli_programs]
