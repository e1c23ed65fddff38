"""Which program search=adaptive repairs, and where its programs sit in the tree: the best-scoring
crashing program (not the latest), shown with its own code; drafts are generation 0 and a repair
is one generation below its parent."""

from __future__ import annotations

import pytest

from seidr.search.loop import SearchParams
from tests.test_adaptive import ADAPTIVE, run


def drafts_then_repairs(draft_scores: list[str]):
    counter = iter(range(1000))

    def reply(step, messages, index):
        number = next(counter)
        if step == "repair":
            return f"```python\n# repair {number}\n# scores: e 1 1\n```"  # better, and still crashing
        return f"```python\n# draft {number}\n# scores: {draft_scores[number % len(draft_scores)]}\n```"

    return reply


@pytest.mark.parametrize("scores, target", [(["e 1 0", "e 0 0"], 0), (["e 0 0", "e 1 0"], 1)])
def test_the_best_scoring_crash_is_repaired_from_its_own_code(scores, target):
    outcome, backend, _ = run(drafts_then_repairs(scores), SearchParams(max_programs=4, **ADAPTIVE))
    assert [p.kind for p in outcome.programs] == ["draft", "draft", "repair", "repair"]
    assert {p.parent_id for p in outcome.programs[2:]} == {target}
    [request] = [messages for step, messages, *_ in backend.requests if step == "repair"]
    assert outcome.programs[target].code.strip() in request[-1].content
    assert outcome.programs[1 - target].code.strip() not in request[-1].content


def test_drafts_are_generation_zero_and_a_repair_is_one_below_its_parent():
    outcome, _, _ = run(drafts_then_repairs(["e 0.5 0"]), SearchParams(max_programs=10, **ADAPTIVE))
    by_id = {p.id: p for p in outcome.programs}
    drafts = [p for p in outcome.programs if p.kind == "draft"]
    repairs = [p for p in outcome.programs if p.kind == "repair"]
    assert drafts and repairs and all(p.generation == 0 and p.parent_id is None for p in drafts)
    assert all(p.generation == by_id[p.parent_id].generation + 1 for p in repairs)
    # a repair that still crashes is repaired in its turn, one generation further down
    assert max(p.generation for p in repairs) == 2
