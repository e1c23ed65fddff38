"""Comparing a program's output with the expected output: the paper's partial credit."""

from __future__ import annotations

from typing import Any

from seidr.execution.base import TestOutcome
from seidr.problem import Example

SHOWN_CHARS = 2000  # of a program's output kept for the record and for prompts
# What a compiled function-mode test prints on stderr when one of its asserts fails (see
# cpp_protocol.checker_source), to tell a wrong answer from the program's own crash or exit
FAILED_ASSERTION = "test assertion failed: "


def output_lines(text: str) -> list[str]:
    """Lines with trailing whitespace dropped, and trailing empty lines dropped."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def score_stdout(expected: str, actual: str, float_tolerance: float | None = None) -> tuple[float, bool]:
    """(score, passed): the fraction of line positions where actual matches expected, over the
    longer of the two (so extra output cannot earn full credit); passed when all lines match.
    With `float_tolerance`, numbers in a line match when they differ by at most that much
    (absolutely, or relative to the expected value)."""
    want, got = output_lines(expected), output_lines(actual)
    if want == got:
        return 1.0, True
    matched = sum(_same_line(a, b, float_tolerance) for a, b in zip(want, got))
    return matched / max(len(want), len(got)), matched == len(want) == len(got)


def _same_line(expected: str, actual: str, tolerance: float | None) -> bool:
    if expected == actual:
        return True
    if tolerance is None:
        return False
    want, got = expected.split(), actual.split()
    return len(want) == len(got) and all(_same_token(a, b, tolerance) for a, b in zip(want, got))


def _same_token(expected: str, actual: str, tolerance: float) -> bool:
    if expected == actual:
        return True
    try:
        a, b = float(expected), float(actual)
    except ValueError:
        return False
    return abs(a - b) <= tolerance or abs(a - b) <= tolerance * abs(a)


def judge(mode: str, test: Example, raw: dict[str, Any] | None, float_tolerance: float | None = None) -> TestOutcome:
    """Turn what the harness saw into a verdict with its partial-credit score. The expected
    output is only ever compared here, outside the sandbox."""
    if raw is None:
        return TestOutcome("error", 0.0, error="the sandbox stopped before this test ran")
    status, error = raw.get("status"), str(raw.get("error", ""))
    stdout = str(raw.get("stdout", ""))
    shown = stdout if len(stdout) <= SHOWN_CHARS else \
        f"{stdout[:SHOWN_CHARS]}\n[... {len(stdout) - SHOWN_CHARS} characters cut]"
    if status == "ok":
        if mode == "function":
            return TestOutcome("pass", 1.0, actual=shown)
        score, passed = score_stdout(test.output, stdout, float_tolerance)
        return TestOutcome("pass" if passed else "wrong", score, actual=shown, error=str(raw.get("stderr", "")))
    if status == "exception":
        if mode == "function" and _failed_assertion(raw):
            return TestOutcome("wrong", 0.0, actual=shown, error=error.strip())
        return TestOutcome("error", 0.0, actual=shown, error=error)
    if status in ("timeout", "output_limit", "memory", "syntax", "compile"):
        return TestOutcome(status, 0.0, actual=shown, error=error)
    return TestOutcome("error", 0.0, actual=shown, error=error or f"unexpected sandbox status {status!r}")


def _failed_assertion(raw: dict[str, Any]) -> bool:
    """Whether a function-mode test failed on its own assert: a Python AssertionError, or a compiled
    test's report as its last line of stderr (a compiled program has no exception type)."""
    if "exc_type" in raw:
        return raw["exc_type"] == "AssertionError"
    lines = str(raw.get("error", "")).strip().split("\n")
    return lines[-1].startswith(FAILED_ASSERTION)
