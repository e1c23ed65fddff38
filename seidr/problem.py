"""What every dataset produces: a problem with its examples split for prompting, validation and test."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# "stdio": the program reads the test input on stdin and is judged on its stdout (PSB2).
# "function": the program defines a function; each test is Python code ending in an assert (HumanEval).
TestMode = Literal["stdio", "function"]


@dataclass(frozen=True)
class Example:
    """One test case.

    In stdio mode `input` is the stdin text and `output` the expected stdout.
    In function mode `input` is self-contained test code (it ends in an assert) and `output` is "".
    """

    input: str
    output: str = ""


@dataclass(frozen=True)
class Problem:
    """A synthesis task: what the LLM is told, and the tests a program is scored on."""

    name: str
    dataset: str
    description: str
    mode: TestMode
    valid: tuple[Example, ...]
    test: tuple[Example, ...]
    prompt_examples: tuple[Example, ...] = ()
    # function mode: the name the tests call, and the signature + docstring the LLM completes
    entry_point: str | None = None
    signature: str | None = None
    # function mode: code the prompt defines besides the entry point (imports, helpers the tests
    # call), prepended to every program so a reply that only writes the function still runs
    preamble: str = ""
    split: str = "heldout"
    meta: dict[str, str] = field(default_factory=dict)
    # legal but suspicious facts about the data (fewer examples than asked): logged, and kept in result.json
    warnings: tuple[str, ...] = ()
