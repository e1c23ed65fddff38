"""PSB2's validation and held-out test cases never share a case: a held-out score is measured on
cases the search never saw. The files may repeat a case; a split may use each copy once."""

from __future__ import annotations

from collections import Counter

import pytest

from seidr.data import psb2 as psb2_module
from seidr.data.psb2 import PSB2Dataset
from tests.test_data import PSB2_PROBLEMS


@pytest.fixture(scope="module")
def psb2(data_dir):
    return PSB2Dataset(data_dir / "psb2")


def cases(psb2: PSB2Dataset, problem: str) -> Counter:
    folder = psb2.datasets_dir / problem
    return Counter(psb2_module._read_examples(folder / f"{problem}-edge.json")
                   + psb2_module._read_examples(folder / f"{problem}-random.json"))


@pytest.mark.parametrize("problem", PSB2_PROBLEMS)
def test_psb2_validation_and_test_cases_are_disjoint(psb2, problem):
    available = cases(psb2, problem)
    for seed, valid_examples, test_examples in ((0, 50, 2000), (7, 120, 300)):
        split = psb2.load(problem, seed=seed, valid_examples=valid_examples, test_examples=test_examples)
        assert split.valid and split.test
        used = Counter(split.valid) + Counter(split.test)
        # each case is used at most as often as the files hold it: no case is in both splits
        # unless the files repeat it
        overused = {case: count for case, count in used.items() if count > available[case]}
        assert not overused, f"{problem} seed {seed}: {len(overused)} cases in both splits"
        unique = {case for case, count in available.items() if count == 1}
        assert not set(split.valid) & set(split.test) & unique


def test_a_planted_overlap_is_seen(psb2, monkeypatch):
    """The check above fails on a split that reuses validation cases in the test split."""
    real_load = PSB2Dataset.load

    def leaky(self, problem, **kwargs):
        split = real_load(self, problem, **kwargs)
        return type(split)(**{**split.__dict__, "test": split.valid[-5:] + split.test[5:]})

    monkeypatch.setattr(PSB2Dataset, "load", leaky)
    with pytest.raises(AssertionError, match="cases in both splits"):
        test_psb2_validation_and_test_cases_are_disjoint(psb2, "gcd")
