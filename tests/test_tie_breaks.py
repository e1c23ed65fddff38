"""Which program wins a tie: the best of a search (what runs on the held-out tests, what adaptive
repairs) is the earliest of the programs with the top mean score, beam keeps the earlier of tied
programs, and lexicase picks at random (seeded) among the programs that survive every test."""

from __future__ import annotations

import random
from collections import Counter

from seidr import dev
from seidr.search.loop import SearchParams
from seidr.search.selection import BeamSelection, LexicaseSelection
from seidr.search.tree import better
from tests.scripted import ScriptedBackend
from tests.test_adaptive import ADAPTIVE, run as run_adaptive
from tests.test_dev_api import NO_CACHE
from tests.test_loop import run, tagged
from tests.test_selection import program


def test_the_earliest_of_tied_programs_is_the_best():
    replies = {"draft0": "0 0.5 0", "draft1": "0.5 0 0"}  # the same mean score

    def reply(step, messages, index):
        return "it is wrong" if step == "explain" else tagged(f"{step}{index}", replies.get(f"{step}{index}", "0 0.5 0"))

    outcome, *_ = run(reply, SearchParams(max_programs=6, drafts_per_prompt=2, explanations_per_program=1,
                                          repairs_per_explanation=2, beam_width=2))
    assert len(outcome.programs) == 6 and len({p.score for p in outcome.programs}) == 1
    assert outcome.best.id == 0


def test_a_later_program_wins_only_with_a_higher_score():
    first, tied, higher = program(0, [0.5, 0]), program(1, [0, 0.5]), program(2, [0.5, 0.5])
    assert better(first, None) and not better(tied, first) and better(first, tied)
    assert better(higher, first) and not better(first, higher)


def test_the_held_out_tests_run_the_earliest_of_tied_programs(tmp_path):
    drafts = ["print(int(input()) + 1)\n", "print(int(input()) - 1)\n"]  # both wrong on every test
    backend = ScriptedBackend(lambda step, messages, index: "```python\n" + drafts[index % 2] + "```")
    result = dev.develop("Read an integer and print twice its value.", examples=[("2", "4"), ("-5", "-10")],
                         tests=[("-1", "-2")], model=backend, max_programs=2, drafts_per_prompt=2,
                         greedy_first_draft=False, output_dir=tmp_path, overrides=NO_CACHE)
    assert [p.code for p in result.programs] == drafts and result.programs[0].score == result.programs[1].score
    assert result.result["best_program_id"] == 0 and result.code == drafts[0]
    # the held-out test (-1 -> -2) fails the first draft and would pass the second
    assert result.test_pass_rate == 0.0


def test_adaptive_repairs_the_earliest_of_tied_crashing_programs():
    counter = iter(range(1000))

    def reply(step, messages, index):
        if step == "repair":
            return tagged(f"repair {next(counter)}", "0 0 0")
        return tagged(f"draft {next(counter)}", "e 0.5 0")  # every draft crashes on the first test, same score

    outcome, backend, _ = run_adaptive(reply, SearchParams(max_programs=4, **ADAPTIVE))
    assert [p.kind for p in outcome.programs] == ["draft", "draft", "repair", "repair"]
    assert {p.parent_id for p in outcome.programs[2:]} == {0}
    [repair_request] = [messages for step, messages, *_ in backend.requests if step == "repair"]
    assert "# draft 0" in repair_request[-1].content and "# draft 1" not in repair_request[-1].content


def test_beam_keeps_the_earlier_of_tied_programs_whatever_their_order_in_the_population():
    population = [program(3, [0, 1]), program(2, [0, 0]), program(1, [1, 0]), program(0, [0.5, 0.5])]
    assert [p.id for p in BeamSelection().select(population, 2, random.Random(0))] == [0, 1]


def test_lexicase_picks_at_random_among_tied_survivors():
    twins = [program(i, [0.5, 1.0, 0.0]) for i in range(3)]
    picked = Counter(p.id for p in LexicaseSelection().select(twins, 90, random.Random(0)))
    assert set(picked) == {0, 1, 2} and min(picked.values()) >= 15, picked
    again = [p.id for p in LexicaseSelection().select(twins, 90, random.Random(0))]
    assert Counter(again) == picked  # seeded
    other = [p.id for p in LexicaseSelection().select(twins, 90, random.Random(1))]
    assert other != again


def test_lexicase_orders_the_tests_anew_for_every_pick():
    # each specialist is the only survivor when its test comes first; the generalist never is
    first, second, generalist = program(0, [1, 0]), program(1, [0, 1]), program(2, [0.5, 0.5])
    picked = Counter(p.id for p in LexicaseSelection().select([first, second, generalist], 60, random.Random(3)))
    assert picked[0] >= 15 and picked[1] >= 15 and picked[2] == 0, picked
