"""The prompts of every language: drafting from the task, explaining a failure, repairing from
an explanation. Every prompt asks for one fenced code block so the code can be extracted; a
language module (python.py, cpp.py) binds these to its own wording."""

from __future__ import annotations

from dataclasses import dataclass

from seidr.execution.base import TestOutcome
from seidr.llm.base import Message
from seidr.problem import Example, Problem

SHOWN_CHARS = 1500  # of a program's output or error in a prompt

IO_FORMAT = (
    "The program reads its input from standard input and prints its answer to standard output. "
    "Each input and output value is on its own line. A list is given as two lines: its length, "
    "then its elements separated by single spaces. Floats and booleans print the way Python prints "
    "them (0.5, 2.0, True, False)."
)


@dataclass(frozen=True)
class Language:
    name: str  # as people write it: "Python 3", "C++17"
    fence: str  # the code block tag: python, cpp

    @property
    def system(self) -> str:
        return (f"You are a careful {self.name} programmer. When asked for code, answer with one complete "
                f"{self.name} program in a single ```{self.fence} fenced block.")


def draft(lang: Language, problem: Problem) -> list[Message]:
    """Ask for a first program from the task alone."""
    if problem.mode == "function":
        text = (
            "Complete the Python function below. Keep its name and signature, implement the body, "
            f"and include any imports it needs. Answer with the complete code in one ```{lang.fence} block.\n\n"
            f"```{lang.fence}\n{problem.signature}```"
        )
    else:
        text = (
            f"Write a {lang.name} program for this task.\n\nTask: {problem.description}\n\n{IO_FORMAT}\n\n"
            f"{_examples(problem.prompt_examples)}"
            f"Answer with the complete program in one ```{lang.fence} block."
        )
    return [Message("system", lang.system), Message("user", text)]


def explain(lang: Language, problem: Problem, code: str, test: Example, outcome: TestOutcome) -> list[Message]:
    """Ask what is wrong with a program, given one failing test. No code in the answer."""
    text = (
        f"{_task(lang, problem)}This attempt fails a test:\n\n```{lang.fence}\n{code}\n```\n\n"
        f"{describe_failure(problem, test, outcome)}\n\n"
        "In two or three sentences, say what the bug is and how to fix it. Do not write code."
    )
    return [Message("user", text)]


def repair(lang: Language, problem: Problem, code: str, test: Example, outcome: TestOutcome,
           explanation: str) -> list[Message]:
    """Ask for a corrected program, given the failing test and an explanation of the bug."""
    text = (
        f"{_task(lang, problem)}This attempt fails a test:\n\n```{lang.fence}\n{code}\n```\n\n"
        f"{describe_failure(problem, test, outcome)}\n\n"
        f"What is wrong, according to a review: {explanation.strip()}\n\n"
        f"Write the corrected version. Answer with the complete program in one ```{lang.fence} block."
    )
    return [Message("system", lang.system), Message("user", text)]


def describe_failure(problem: Problem, test: Example, outcome: TestOutcome) -> str:
    """A failing test in words: the input, what was expected, and what happened instead."""
    if problem.mode == "function":
        check = test_assertion(test.input)
        happened = {
            "wrong": "the assertion failed",
            "timeout": "it ran out of time",
            "syntax": f"the code does not compile:\n{_clip(outcome.error)}",
        }.get(outcome.status, f"it raised an error:\n{_clip(outcome.error)}")
        return f"Test:\n```python\n{check}\n```\nResult: {happened}"
    parts = [f"Input:\n```\n{test.input}```", f"Expected output:\n```\n{test.output}```"]
    if outcome.status == "wrong":
        parts.append(f"Actual output:\n```\n{_clip(outcome.actual) or '(nothing)'}\n```")
    elif outcome.status == "timeout":
        parts.append("Result: the program did not finish in time.")
    elif outcome.status == "output_limit":
        parts.append("Result: the program printed far too much output.")
    elif outcome.status == "compile":
        parts.append(f"Result: the program does not compile:\n```\n{_clip(outcome.error)}\n```")
    else:
        parts.append(f"Result: the program failed with this error:\n```\n{_clip(outcome.error)}\n```")
    return "\n".join(parts)


def test_assertion(snippet: str) -> str:
    """The part of a HumanEval test snippet worth showing: what follows `candidate = ...`."""
    lines = snippet.rstrip("\n").split("\n")
    for index, line in enumerate(lines):
        if line.startswith("candidate = "):
            return "\n".join(lines[index + 1:])
    return snippet


def _task(lang: Language, problem: Problem) -> str:
    if problem.mode == "function":
        return f"Task: complete this {lang.name} function.\n\n```{lang.fence}\n{problem.signature}```\n\n"
    return f"Task: {problem.description}\n\n{IO_FORMAT}\n\n"


def _clip(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "\n… (cut)"


def _examples(examples: tuple[Example, ...]) -> str:
    if not examples:
        return ""
    shown = "\n".join(
        f"Example {i}\nInput:\n```\n{ex.input}```\nOutput:\n```\n{ex.output}```"
        for i, ex in enumerate(examples, 1)
    )
    return f"{shown}\n\n"
