"""The SEIDR loop's semantics with a scripted model. Programs here are tagged lines like
`# scores: 1 0 0.5`, and a stand-in evaluator reads the per-test scores off the tag, so each test
controls exactly how every program scores."""

import asyncio
import re

import pytest

from seidr.execution.base import TestOutcome
from seidr.llm.client import LLMClient
from seidr.problem import Example, Problem
from seidr.prompts import python as python_prompts
from seidr.search.loop import SearchParams, SeidrSearch
from seidr.search.selection import BeamSelection, LexicaseSelection
from tests.scripted import ScriptedBackend, step_of

PROBLEM = Problem(
    name="toy", dataset="test", description="Print the answer.", mode="stdio",
    valid=tuple(Example(f"{i}\n", f"{i}\n") for i in range(3)), test=(Example("9\n", "9\n"),),
)


def tagged(name: str, scores: str) -> str:
    return f"```python\n# {name}\n# scores: {scores}\n```"


async def evaluate(code: str) -> list[TestOutcome]:
    scores = [float(s) for s in re.search(r"# scores: (.*)", code).group(1).split()]
    return [TestOutcome("pass" if s == 1 else "wrong", s, actual="x") for s in scores]


def run(reply, params: SearchParams, selection=None, seed: int = 0):
    backend = ScriptedBackend(reply)
    llm = LLMClient(backend, temperature=0.7, max_tokens=100, max_concurrency=4, seed=seed)
    saved = []
    search = SeidrSearch(PROBLEM, llm, evaluate, selection or BeamSelection(), params, python_prompts,
                         "python", seed, on_program=saved.append)
    outcome = asyncio.run(search.run())
    return outcome, backend, llm, saved


def never_right(step, messages, index):
    return "the bug is X" if step == "explain" else tagged(f"{step}{index}", "0 0 0.5")


@pytest.mark.parametrize("budget", [1, 2, 7, 10, 23])
def test_budget_is_never_exceeded_and_is_used_up(budget):
    params = SearchParams(max_programs=budget, drafts_per_prompt=2, explanations_per_program=2,
                          repairs_per_explanation=2, beam_width=2)
    outcome, _, _, saved = run(never_right, params)
    assert len(outcome.programs) == budget and saved == outcome.programs
    assert [p.id for p in outcome.programs] == list(range(budget))
    assert not outcome.solved


def test_generation_shape_follows_the_parameters():
    params = SearchParams(max_programs=2 + 2 * 2 * 3, drafts_per_prompt=2, explanations_per_program=2,
                          repairs_per_explanation=3, beam_width=2)
    outcome, backend, llm, _ = run(never_right, params)
    steps = [step for step, *_ in backend.requests]
    assert steps.count("draft") == 2  # one greedy request, one for the other draft
    assert steps.count("explain") == 2  # one request per parent, n=2 explanations each
    assert all(n == 2 for step, _, n, _ in backend.requests if step == "explain")
    assert steps.count("repair") == 4 and all(n == 3 for step, _, n, _ in backend.requests if step == "repair")
    repairs = [p for p in outcome.programs if p.kind == "repair"]
    assert len(repairs) == 12 and {p.parent_id for p in repairs} == {0, 1}
    assert llm.usage.calls == 8 and llm.usage.prompt_tokens == 10 * (2 + 4 + 12)  # 10 per completion


@pytest.mark.parametrize("greedy, drafts", [
    (True, [(1, 0.0), (2, 0.7)]),  # one greedy draft, the rest sampled at the model's temperature
    (False, [(3, 0.7)]),  # every draft sampled
])
def test_first_draft_is_greedy_unless_switched_off(greedy, drafts):
    from seidr.app import search_params
    from seidr.dev import compose_config

    assert search_params(compose_config([f"search.greedy_first_draft={str(greedy).lower()}"])).greedy_first_draft \
        is greedy
    params = SearchParams(max_programs=3, drafts_per_prompt=3, greedy_first_draft=greedy)
    _, backend, _, _ = run(never_right, params)
    assert sorted((n, t) for step, _, n, t in backend.requests if step == "draft") == drafts


class FewerDrafts(ScriptedBackend):
    """Answers a request for several drafts with one reply fewer, as a server may."""

    async def generate(self, messages, *, n, **options):
        replies = await super().generate(messages, n=n, **options)
        return replies[:-1] if step_of(messages) == "draft" and n > 1 else replies


def test_a_backend_that_returns_fewer_replies_leaves_no_gap_in_the_tree():
    params = SearchParams(max_programs=3 + 4, drafts_per_prompt=3, explanations_per_program=1,
                          repairs_per_explanation=2, beam_width=2)
    backend = FewerDrafts(never_right)
    llm = LLMClient(backend, temperature=0.7, max_tokens=100, max_concurrency=4, seed=0)
    saved = []
    outcome = asyncio.run(SeidrSearch(PROBLEM, llm, evaluate, BeamSelection(), params, python_prompts, "python",
                                      0, on_program=saved.append).run())
    # the missing draft is one program fewer; every repair after it is still recorded, in order
    assert [p.kind for p in outcome.programs] == ["draft"] * 2 + ["repair"] * 4 and saved == outcome.programs
    assert [p.id for p in outcome.programs] == list(range(6))
    assert {p.parent_id for p in outcome.programs if p.kind == "repair"} == {0, 1}


def test_search_stops_at_the_first_program_that_passes():
    def reply(step, messages, index):
        if step == "explain":
            return "off by one"
        if step == "repair":
            return tagged("fixed", "1 1 1")
        return tagged(f"draft{index}", "0 1 0")

    params = SearchParams(max_programs=100, drafts_per_prompt=2, explanations_per_program=1,
                          repairs_per_explanation=1, beam_width=1)
    outcome, backend, _, _ = run(reply, params)
    assert outcome.solved and outcome.best.kind == "repair" and outcome.best.explanation == "off by one"
    assert len(outcome.programs) == 3  # two drafts, then the one repair that passed
    assert [step for step, *_ in backend.requests].count("repair") == 1


def test_a_passing_draft_ends_the_search_without_repairs():
    outcome, backend, _, _ = run(lambda step, m, i: tagged("ok", "1 1 1"), SearchParams(max_programs=50))
    assert outcome.solved and outcome.best.kind == "draft"
    assert {step for step, *_ in backend.requests} == {"draft"}


def test_explain_shows_the_worst_failing_test_and_repair_gets_the_explanation():
    def reply(step, messages, index):
        return {"explain": "EXPLANATION-42", "draft": tagged("d", "1 0.5 0")}.get(step, tagged("r", "0 0 0"))

    params = SearchParams(max_programs=3, drafts_per_prompt=1, explanations_per_program=1,
                          repairs_per_explanation=2, beam_width=1)
    _, backend, _, _ = run(reply, params)
    explain_text = next(m[-1].content for step, m, *_ in backend.requests if step == "explain")
    assert "Input:\n```\n2\n```" in explain_text  # test 2 scored lowest (0)
    repair_text = next(m[-1].content for step, m, *_ in backend.requests if step == "repair")
    assert "EXPLANATION-42" in repair_text and "# scores: 1 0.5 0" in repair_text


def drafts_in_order(draft_scores: list[str]):
    """Drafts get the given scores in the order they are asked for; explanations and repairs fail."""
    made = iter(range(len(draft_scores)))

    def reply(step, messages, index):
        if step == "explain":
            return "bug"
        if step == "draft":
            number = next(made)
            return tagged(f"draft{number}", draft_scores[number])
        return tagged("child", "0 0 0")

    return reply


def repaired_parents(outcome, generation: int = 1) -> set[str]:
    """The first lines of the programs the repairs of `generation` came from."""
    codes = {p.id: p.code.split("\n")[0] for p in outcome.programs}
    return {codes[p.parent_id] for p in outcome.programs if p.kind == "repair" and p.generation == generation}


def test_beam_expands_the_best_programs_of_the_generation():
    params = SearchParams(max_programs=4 + 2, drafts_per_prompt=4, explanations_per_program=1,
                          repairs_per_explanation=1, beam_width=2)
    outcome, _, _, _ = run(drafts_in_order(["0 0 0", "0.5 0.5 0", "0 0 0.1", "1 1 0"]), params)
    assert repaired_parents(outcome) == {"# draft1", "# draft3"}


def first_repairs_in_order(repair_scores: list[str]):
    """Drafts fail; the first repairs get the given scores in the order they are asked for, later
    ones fail."""
    made = iter(range(100))

    def reply(step, messages, index):
        if step == "explain":
            return "bug"
        if step == "draft":
            return tagged(f"draft{index}", "0 0 0")
        number = next(made)
        return tagged(f"child{number}", repair_scores[number] if number < len(repair_scores) else "0 0 0")

    return reply


# generation 1's children: a generalist, a specialist that alone passes test 2 but has a low
# mean, a program the generalist dominates, and a runner-up by mean that it dominates too
CHILDREN = ["0.9 0.9 0", "0 0 1", "0.5 0.5 0.1", "0.6 0.6 0"]
TWO_GENERATIONS = SearchParams(max_programs=2 + 4 + 4, drafts_per_prompt=2, explanations_per_program=1,
                               repairs_per_explanation=2, beam_width=2)


def test_beam_repairs_the_best_of_the_last_generation():
    for seed in range(3):
        outcome, _, _, _ = run(first_repairs_in_order(CHILDREN), TWO_GENERATIONS, BeamSelection(), seed)
        assert repaired_parents(outcome, 2) == {"# child0", "# child3"}
        assert len([p for p in outcome.programs if p.generation == 2]) == 4


def test_lexicase_repairs_a_specialist_that_beam_drops_and_never_a_dominated_program():
    parents = []
    for seed in range(12):
        outcome, _, _, _ = run(first_repairs_in_order(CHILDREN), TWO_GENERATIONS, LexicaseSelection(), seed)
        parents.append(repaired_parents(outcome, 2))
    assert set().union(*parents) == {"# child0", "# child1"}


def test_greedy_is_one_draft_at_temperature_zero():
    outcome, backend, llm, _ = run(never_right, SearchParams(max_programs=10, strategy="greedy"))
    assert len(outcome.programs) == 1 and [(s, n, t) for s, _, n, t in backend.requests] == [("draft", 1, 0.0)]


@pytest.mark.parametrize("budget", [1, 5, 10])
def test_resample_only_drafts_until_the_budget(budget):
    outcome, backend, _, _ = run(never_right, SearchParams(max_programs=budget, drafts_per_prompt=2,
                                                           strategy="resample"))
    assert len(outcome.programs) == budget and {p.kind for p in outcome.programs} == {"draft"}
    assert {step for step, *_ in backend.requests} == {"draft"}
    assert all(p.parent_id is None for p in outcome.programs)


def test_resample_stops_when_a_draft_passes():
    made = iter(range(100))

    def reply(step, messages, index):
        return tagged("d", "1 1 1") if next(made) == 4 else tagged("d", "0 0 0")

    outcome, _, _, _ = run(reply, SearchParams(max_programs=10, drafts_per_prompt=2, strategy="resample"))
    assert outcome.solved and len(outcome.programs) == 5


@pytest.mark.parametrize("prompt_id", range(6))
def test_template_instructions_restate_the_failing_test_without_an_llm_call(prompt_id):
    params = SearchParams(max_programs=2 + 2 * 4, drafts_per_prompt=2, explanations_per_program=2,
                          repairs_per_explanation=2, beam_width=2, debug_prompt_id=prompt_id)
    outcome, backend, llm, _ = run(never_right, params)
    steps = [step for step, *_ in backend.requests]
    assert "explain" not in steps
    # a template is one instruction per parent: its four repairs come from one request
    assert [n for step, _, n, _ in backend.requests if step == "repair"] == [4, 4]
    repairs = [p for p in outcome.programs if p.kind == "repair"]
    assert len(repairs) == 8
    assert llm.usage.calls == 4  # two drafts, two repair requests
    # never_right fails tests 0 and 1 outright: the worst, test 0 (input 0, output 0), is restated
    texts = {p.explanation for p in repairs}
    assert len(texts) == 1
    text = texts.pop()
    assert "\n0\n" in text
    assert all(text in messages[-1].content for step, messages, *_ in backend.requests if step == "repair")


def test_each_llm_debug_prompt_words_its_request_differently():
    asked = {}
    for prompt_id in range(6, 11):
        params = SearchParams(max_programs=4, drafts_per_prompt=2, explanations_per_program=1,
                              repairs_per_explanation=2, beam_width=1, debug_prompt_id=prompt_id)
        _, backend, _, _ = run(never_right, params)
        explains = [messages[-1].content for step, messages, *_ in backend.requests if step == "explain"]
        assert len(explains) == 1
        asked[prompt_id] = explains[0].rsplit("\n\n", 1)[-1]
    assert len(set(asked.values())) == 5


def test_debug_prompt_id_out_of_range_is_a_clear_error():
    from omegaconf import OmegaConf

    from seidr.app import search_params
    from seidr.errors import SeidrError
    from seidr.dev import compose_config

    cfg = compose_config(["search.debug_prompt_id=11"])
    with pytest.raises(SeidrError, match="debug_prompt_id must be 0-10"):
        search_params(cfg)
    assert OmegaConf.select(compose_config([]), "search.debug_prompt_id") == 6
