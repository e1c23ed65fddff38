"""Comparing a program's output with the expected output: the paper's partial credit."""

from __future__ import annotations


def output_lines(text: str) -> list[str]:
    """Lines with trailing whitespace dropped, and trailing empty lines dropped."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def score_stdout(expected: str, actual: str) -> tuple[float, bool]:
    """(score, passed): the fraction of line positions where actual matches expected, over the
    longer of the two (so extra output cannot earn full credit); passed when all lines match."""
    want, got = output_lines(expected), output_lines(actual)
    if want == got:
        return 1.0, True
    matched = sum(a == b for a, b in zip(want, got))
    return matched / max(len(want), len(got)), False
