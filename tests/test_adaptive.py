"""search=adaptive and dedupe with a scripted model: crashes are repaired from their error, wrong
answers get fresh drafts with resample's seeds, and a repeated program costs no budget."""

import asyncio
import re

import pytest

from seidr.execution.base import TestOutcome
from seidr.llm.client import LLMClient
from seidr.prompts import python as python_prompts
from seidr.search.loop import SearchParams, SeidrSearch
from seidr.search.selection import BeamSelection
from tests.scripted import ScriptedBackend
from tests.test_loop import PROBLEM, tagged

ADAPTIVE = dict(strategy="adaptive", drafts_per_prompt=2, repairs_per_explanation=2, dedupe=True)


async def evaluate(code: str) -> list[TestOutcome]:
    """`# scores: 1 0 e` style tags: 1 passes, a number is a wrong answer with that score, e crashes."""
    outcomes = []
    for mark in re.search(r"# scores: (.*)", code).group(1).split():
        if mark == "e":
            outcomes.append(TestOutcome("error", 0.0, error="NameError: name 'math' is not defined"))
        else:
            outcomes.append(TestOutcome("pass" if mark == "1" else "wrong", float(mark), actual="x"))
    return outcomes


def run(reply, params: SearchParams):
    backend = ScriptedBackend(reply)
    llm = LLMClient(backend, temperature=0.7, max_tokens=100, max_concurrency=4, seed=3)
    search = SeidrSearch(PROBLEM, llm, evaluate, BeamSelection(), params, python_prompts, "python", 3)
    outcome = asyncio.run(search.run())
    return outcome, backend, search


def numbered(scores: str):
    """Every reply a different program with the same scores."""
    counter = iter(range(10_000))
    return lambda step, messages, index: tagged(f"{step} {next(counter)}", scores)


def test_wrong_answers_get_drafts_with_the_seeds_resample_uses():
    adaptive, adaptive_backend, _ = run(numbered("0 0.5 0"), SearchParams(max_programs=10, **ADAPTIVE))
    _, resample_backend, _ = run(numbered("0 0.5 0"), SearchParams(max_programs=10, strategy="resample",
                                                                   drafts_per_prompt=2))
    assert {p.kind for p in adaptive.programs} == {"draft"} and len(adaptive.programs) == 10
    assert adaptive_backend.seeds == resample_backend.seeds
    assert [r[2:] for r in adaptive_backend.requests] == [r[2:] for r in resample_backend.requests]


def test_a_crash_is_repaired_from_its_error_and_drafts_keep_resamples_seeds():
    drafts = iter(range(10_000))

    def crashing_first(step, messages, index):
        if step == "repair":
            return tagged(f"fix {index}", "0 0.5 0")
        number = next(drafts)
        return tagged(f"draft {number}", "0 e 1" if number == 0 else "0.5 0 0")

    outcome, backend, _ = run(crashing_first, SearchParams(max_programs=10, **ADAPTIVE))
    steps = [r[0] for r in backend.requests]
    repairs = [p for p in outcome.programs if p.kind == "repair"]
    assert repairs and all(p.parent_id == 0 for p in repairs)  # only the program that crashed
    # the repair prompt shows the error and the test it crashed on, with no explanation call
    repair_prompt = next(r[1][-1].content for r in backend.requests if r[0] == "repair")
    assert "NameError: name 'math' is not defined" in repair_prompt and "Input:\n```\n1\n```" in repair_prompt
    assert "explain" not in steps and "repair" in steps
    # drafts still draw from resample's seed sequence, whatever repairs came between
    draft_seeds = [seed for (step, *_), seed in zip(backend.requests, backend.seeds) if step == "draft"]
    assert draft_seeds == [3 * 100_003 + k for k in range(len(draft_seeds))]
    assert len(outcome.programs) == 10


def test_repair_rounds_never_follow_each_other_and_each_crash_is_repaired_once():
    outcome, backend, _ = run(numbered("e e e"), SearchParams(max_programs=12, **ADAPTIVE))
    steps = [r[0] for r in backend.requests]
    assert steps[:2] == ["draft", "draft"]  # the greedy draft and the sampled one
    rounds = steps[2:]
    assert rounds == ["repair", "draft"] * (len(rounds) // 2) + rounds[len(rounds) // 2 * 2:]
    parents = [p.parent_id for p in outcome.programs if p.kind == "repair"]
    assert len(parents) == 2 * len(set(parents))  # two repairs per crash, no crash repaired twice
    assert len(outcome.programs) == 12


def test_other_failures_are_repaired_when_repair_on_names_them():
    outcome, backend, _ = run(numbered("0 0.5 0"), SearchParams(max_programs=6, repair_on=("wrong",), **ADAPTIVE))
    assert any(p.kind == "repair" for p in outcome.programs)


def test_a_solved_repair_ends_the_search():
    replies = iter(range(10_000))

    def reply(step, messages, index):
        return tagged(f"{step} {next(replies)}", "1 1 1" if step == "repair" else "e e e")

    outcome, _, _ = run(reply, SearchParams(max_programs=10, **ADAPTIVE))
    # two drafts, then the first of their repairs solves: its sibling is not recorded
    assert outcome.solved and outcome.best.kind == "repair" and len(outcome.programs) == 3


@pytest.mark.parametrize("strategy", ["resample", "seidr", "adaptive"])
def test_a_repeated_program_costs_no_budget(strategy):
    def reply(step, messages, index, counter=iter(range(10_000))):  # noqa: B008 - one counter per run
        if step == "explain":
            return "the bug"
        number = next(counter)
        return tagged(f"program {number // 2}", "0 0.5 0")  # every program comes twice

    params = SearchParams(max_programs=6, strategy=strategy, dedupe=True)
    outcome, _, search = run(reply, params)
    codes = [p.code for p in outcome.programs]
    assert len(codes) == 6 and len(set(codes)) == 6
    assert search.duplicates >= 5


def test_a_model_that_only_repeats_itself_still_ends():
    outcome, backend, search = run(lambda step, messages, index: tagged("same", "0 0.5 0"),
                                   SearchParams(max_programs=5, strategy="resample", dedupe=True))
    assert len(outcome.programs) == 1 and not outcome.solved
    assert search.duplicates > 5 and len(backend.requests) < 20


def test_without_dedupe_repeats_are_scored():
    outcome, _, search = run(lambda step, messages, index: tagged("same", "0 0.5 0"),
                             SearchParams(max_programs=5, strategy="resample"))
    assert len(outcome.programs) == 5 and search.duplicates == 0
