"""Datasets: each one turns a problem name into a `Problem` with seeded validation/test splits."""

from __future__ import annotations

from typing import Protocol

from seidr.problem import Problem


class Dataset(Protocol):
    """A source of problems, read from the files users have."""

    name: str

    def problem_names(self) -> list[str]: ...

    def load(self, problem: str, *, seed: int, valid_examples: int, test_examples: int,
             prompt_examples: int) -> Problem: ...
