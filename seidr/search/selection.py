"""Choosing the parents of the next generation."""

from __future__ import annotations

import random
from typing import Protocol, Sequence

from seidr.search.tree import Program


class Selection(Protocol):
    """Picks `k` parents (possibly repeated) from a population."""

    def select(self, population: Sequence[Program], k: int, rng: random.Random) -> list[Program]: ...


class BeamSelection:
    """Top-k by mean validation score; earlier programs win ties."""

    name = "beam"

    def select(self, population: Sequence[Program], k: int, rng: random.Random) -> list[Program]:
        return sorted(population, key=lambda p: (-p.score, p.id))[:k]


class LexicaseSelection:
    """Lexicase selection: one selection event per parent slot. Each event shuffles the test
    order anew and keeps, test by test, only the candidates with the best score on that test;
    a random survivor wins. Programs that excel on different tests can all become parents,
    where beam search would keep only the best on average."""

    name = "lexicase"

    def select(self, population: Sequence[Program], k: int, rng: random.Random) -> list[Program]:
        if not population:
            return []
        n_tests = min(len(p.outcomes) for p in population)
        parents = []
        for _ in range(k):
            order = list(range(n_tests))
            rng.shuffle(order)
            survivors = list(population)
            for test in order:
                best = max(p.outcomes[test].score for p in survivors)
                survivors = [p for p in survivors if p.outcomes[test].score == best]
                if len(survivors) == 1:
                    break
            parents.append(rng.choice(survivors))
        return parents
