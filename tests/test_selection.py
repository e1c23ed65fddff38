import random

from seidr.execution.base import TestOutcome
from seidr.search.selection import BeamSelection, LexicaseSelection
from seidr.search.tree import Program


def program(pid: int, scores: list[float]) -> Program:
    outcomes = tuple(TestOutcome("pass" if s == 1 else "wrong", s) for s in scores)
    return Program(id=pid, parent_id=None, kind="draft", generation=0, code="", outcomes=outcomes)


def test_beam_keeps_the_top_k_by_mean_score_earlier_first_on_ties():
    population = [program(0, [0, 0]), program(1, [1, 0]), program(2, [1, 1]), program(3, [0, 1])]
    assert [p.id for p in BeamSelection().select(population, 2, random.Random(0))] == [2, 1]


def test_lexicase_never_picks_a_dominated_program():
    dominated = program(0, [0.5, 0.5, 0.5])
    better = program(1, [1.0, 0.5, 1.0])
    picked = LexicaseSelection().select([dominated, better], 30, random.Random(1))
    assert all(p.id == 1 for p in picked)


def test_lexicase_is_seeded():
    population = [program(i, [random.Random(i).random() for _ in range(5)]) for i in range(8)]
    first = [p.id for p in LexicaseSelection().select(population, 10, random.Random(7))]
    assert first == [p.id for p in LexicaseSelection().select(population, 10, random.Random(7))]
