"""execution.float_tolerance: numbers match when they differ by at most the tolerance, absolutely
or relative to the expected value, the bound included; and the configured value is the one the
Python and C++ executors judge with."""

from __future__ import annotations

import asyncio

import pytest

from seidr.app import make_executor
from seidr.execution.scoring import score_stdout
from seidr.problem import Example


@pytest.mark.parametrize("expected, actual, tolerance, passed", [
    # absolute: 0.25 off, with the relative bound (0.25 * 0.5) too tight to help
    ("0.5", "0.75", 0.25, True),
    ("0.5", "0.7500001", 0.25, False),
    # relative to the expected value: 2 off from 8 is 0.25 of it, the absolute bound is far too tight
    ("8", "10", 0.25, True),
    ("8", "10.0001", 0.25, False),
    ("1000000", "1000050", 1e-4, True),  # 50 off, within 1e-4 of a million
    ("1000000", "1000150", 1e-4, False),
    # relative to the expected value, not the actual one: 9 is within half of 19, not of 10
    ("10", "19", 0.5, False),
    ("-8", "-10", 0.25, True),  # the size of a negative expected value
])
def test_a_number_matches_within_the_tolerance_absolute_or_relative_bound_included(
        expected, actual, tolerance, passed):
    assert score_stdout(f"{expected}\n", f"{actual}\n", tolerance) == ((1.0, True) if passed else (0.0, False))


def test_tolerance_applies_token_by_token_and_only_to_numbers():
    assert score_stdout("x 0.5 2\n", "x 0.50001 2\n", 1e-3) == (1.0, True)
    assert score_stdout("x 0.5 2\n", "y 0.50001 2\n", 1e-3) == (0.0, False)  # words still match exactly
    assert score_stdout("0.5 2\n", "0.5 2 3\n", 1e-3) == (0.0, False)  # and so does the number of tokens
    assert score_stdout("0.5\n", "0.5001\n", None) == (0.0, False)  # off by default
    # partial credit per line, over the longer output
    assert score_stdout("1.0\n2.0\n3.0\n", "1.0001\n9\n3.0\n", 1e-3) == (pytest.approx(2 / 3), False)


ONE_THIRD = [Example("\n", "0.3333333333333333\n")]


@pytest.mark.parametrize("language", ["python", "cpp"])
def test_the_configured_tolerance_reaches_the_executor(compose_cfg, language):
    executor = make_executor(compose_cfg(f"language={language}", "execution.float_tolerance=0.001",
                                         "execution.isolation=process"))
    assert executor.language == language and executor.float_tolerance == 0.001
    assert make_executor(compose_cfg(f"language={language}")).float_tolerance is None


def test_a_python_program_is_judged_with_the_configured_tolerance(compose_cfg):
    code = "input()\nprint(f'{1 / 3:.4f}')\n"  # 0.3333: off by 3.3e-5

    def status(*overrides: str) -> str:
        executor = make_executor(compose_cfg("execution.isolation=process", *overrides))
        return asyncio.run(executor.run(code, ONE_THIRD, "stdio"))[0].status

    assert status("execution.float_tolerance=0.0001") == "pass"
    assert status("execution.float_tolerance=0.00001") == "wrong"
    assert status() == "wrong"
