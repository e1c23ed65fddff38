"""The prompts of every language: drafting from the task, explaining a failure, repairing from
an explanation. Every prompt asks for one fenced code block so the code can be extracted; a
language module (python.py, cpp.py) binds these to its own wording."""

from __future__ import annotations

import textwrap
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
    def family(self) -> str:
        """The name without its version, as in "complete the Python function"."""
        return self.name.rstrip("0123456789 ")

    @property
    def system(self) -> str:
        return (f"You are a careful {self.name} programmer. When asked for code, answer with one complete "
                f"{self.name} program in a single ```{self.fence} fenced block.")


def draft(lang: Language, problem: Problem) -> list[Message]:
    """Ask for a first program from the task alone."""
    if problem.mode == "function":
        text = (
            f"Complete the {lang.family} function below. Keep its name and signature, implement the body, "
            f"and include any {'headers' if lang.fence == 'cpp' else 'imports'} it needs. Answer with the complete code in one ```{lang.fence} block.\n\n"
            f"```{lang.fence}\n{problem.signature}```"
        )
    else:
        text = (
            f"Write a {lang.name} program for this task.\n\nTask: {problem.description}\n\n{IO_FORMAT}\n\n"
            f"{_examples(problem.prompt_examples)}"
            f"Answer with the complete program in one ```{lang.fence} block."
        )
    return [Message("system", lang.system), Message("user", text)]


# How the Instruct step words a bug: the GECCO'23 paper compared fixed templates that restate the
# failing test (ids 0-5, no LLM call) with explanations the LLM writes (ids 6-10). The wordings
# here are seidr's own; 6 is the default.
DEFAULT_DEBUG_PROMPT = 6
TEMPLATE_IDS = range(0, 6)
DEBUG_PROMPT_IDS = range(0, 11)

_ASK_FOR_EXPLANATION = {
    6: "In two or three sentences, say what the bug is and how to fix it. Do not write code.",
    7: "Go through the program on this input step by step and find where it goes wrong. Explain the "
       "mistake in a few sentences. Do not write code.",
    8: "Name the line or expression that is wrong and say what it should compute instead. Answer in "
       "plain words, without code.",
    9: "First say in one sentence what the program is meant to do, then which case it gets wrong and "
       "why. Do not write code.",
    10: "Review this attempt for a colleague: a short note naming the bug and the change that fixes "
        "it. No code in your note.",
}

_TEMPLATES = {  # (stdin/stdout wording, function wording)
    0: ("For the input\n{input}\nthe program must print\n{expected}",
        "The code must pass this test:\n{check}"),
    1: ("Given the input\n{input}\nthe program printed\n{actual}\nbut the right output is\n{expected}",
        "This test does not pass, and it must:\n{check}"),
    2: ("Change the program so that it prints\n{expected}\nwhen its input is\n{input}",
        "Change the function so that this holds:\n{check}"),
    3: ("The program is wrong on this case. Input:\n{input}\nCorrect output:\n{expected}",
        "The function is wrong on this case:\n{check}"),
    4: ("Fix the program for the input\n{input}\n(expected output:\n{expected})\nand keep every "
        "other behaviour.", "Fix the function so that\n{check}\npasses, and keep every other behaviour."),
    5: ("Make sure the program handles this case: input\n{input}\nmust give\n{expected}",
        "Make sure the function handles this case:\n{check}"),
}


def is_template(prompt_id: int) -> bool:
    """Whether a debug prompt id is a fixed template (no LLM call) or an LLM explanation."""
    if prompt_id not in DEBUG_PROMPT_IDS:
        raise ValueError(f"debug_prompt_id must be 0-10, not {prompt_id}")
    return prompt_id in TEMPLATE_IDS


def template_instruction(prompt_id: int, problem: Problem, test: Example, outcome: TestOutcome) -> str:
    """The bug as a fixed template restating the failing test (debug prompt ids 0-5)."""
    stdio, function = _TEMPLATES[prompt_id]
    if problem.mode == "function":
        return function.format(check=test_assertion(test.input).strip())
    actual = _clip(outcome.actual) if outcome.status == "wrong" else f"({outcome.status})"
    return stdio.format(input=test.input.rstrip("\n"), expected=test.output.rstrip("\n"),
                        actual=actual.rstrip("\n") or "(nothing)")


def explain(lang: Language, problem: Problem, code: str, test: Example, outcome: TestOutcome,
            prompt_id: int = DEFAULT_DEBUG_PROMPT) -> list[Message]:
    """Ask what is wrong with a program, given one failing test. No code in the answer."""
    text = (
        f"{_task(lang, problem)}This attempt fails a test:\n\n```{lang.fence}\n{code}\n```\n\n"
        f"{describe_failure(lang, problem, test, outcome)}\n\n{_ASK_FOR_EXPLANATION[prompt_id]}"
    )
    return [Message("user", text)]


def repair(lang: Language, problem: Problem, code: str, test: Example, outcome: TestOutcome,
           explanation: str) -> list[Message]:
    """Ask for a corrected program, given the failing test and an explanation of the bug."""
    text = (
        f"{_task(lang, problem)}This attempt fails a test:\n\n```{lang.fence}\n{code}\n```\n\n"
        f"{describe_failure(lang, problem, test, outcome)}\n\n"
        f"What is wrong, according to a review: {explanation.strip()}\n\n"
        f"Write the corrected version. Answer with the complete program in one ```{lang.fence} block."
    )
    return [Message("system", lang.system), Message("user", text)]


def fix_error(lang: Language, problem: Problem, code: str, test: Example, outcome: TestOutcome) -> list[Message]:
    """Ask for a corrected program from execution feedback alone: the test it crashed (or failed
    to compile) on and the error, with no explanation step in between."""
    text = (
        f"{_task(lang, problem)}Running this attempt ends in an error:\n\n```{lang.fence}\n{code}\n```\n\n"
        f"{describe_failure(lang, problem, test, outcome)}\n\n"
        "Find what causes this error and fix it, keeping the parts of the program that already work. "
        f"Answer with the complete corrected program in one ```{lang.fence} block."
    )
    return [Message("system", lang.system), Message("user", text)]


def describe_failure(lang: Language, problem: Problem, test: Example, outcome: TestOutcome) -> str:
    """A failing test in words: the input, what was expected, and what happened instead."""
    if problem.mode == "function":
        check = test_assertion(test.input)
        happened = {
            "wrong": "the assertion failed",
            "timeout": "it ran out of time",
            "syntax": f"the code does not compile:\n{_clip(outcome.error)}",
            "compile": f"the code does not compile:\n{_clip(outcome.error)}",
        }.get(outcome.status, f"it raised an error:\n{_clip(outcome.error)}")
        return f"Test:\n```{lang.fence}\n{check}\n```\nResult: {happened}"
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
    """The part of a HumanEval test snippet worth showing: what follows `candidate = ...` in
    Python, the body of `main` in C++ (HumanEval-X)."""
    lines = snippet.rstrip("\n").split("\n")
    for index, line in enumerate(lines):
        if line.startswith("candidate = "):
            return "\n".join(lines[index + 1:])
        if line.replace(" ", "").startswith("intmain(){") and lines[-1].strip() == "}":
            body = [line.split("{", 1)[1], *lines[index + 1:-1]]
            return textwrap.dedent("\n".join(part for part in body if part.strip()))
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
