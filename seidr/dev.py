"""seidr from Python: synthesize a program for your own task in one call.

    from seidr import dev
    result = dev.develop(
        "Read an integer and print twice its value.",
        examples=[("2\\n", "4\\n"), ("-5\\n", "-10\\n")],
        max_programs=10,
    )
    print(result.solved, result.code)

Function tasks (HumanEval style) take a signature and assert tests instead:

    dev.develop(signature="def add(a, b):\\n    \\"\\"\\"Sum of a and b.\\"\\"\\"\\n",
                asserts=["assert add(1, 2) == 3"])

`model` is a config option ("local", the embedded default; "openai"; "ollama") or any LLM
backend object (yours to reuse and close: one embedded model can serve many calls);
`overrides` are Hydra overrides as on the command line ("model.name=gpt-4o");
other keyword arguments set `search.*` (max_programs, branching_factor, beam_width, ...).
`critic(input, expected, actual) -> score in [0, 1]` judges outputs where several are right;
it runs in your process on the program's captured output, never inside the sandbox.
`develop` also works inside a running event loop (notebooks); `adevelop` is its async form.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from seidr.app import JobOutcome, run_problem
from seidr.execution.verdicts import Critic
from seidr.config import CONFIG_DIR, register_resolvers
from seidr.data.jsonl import check_task, task_problem
from seidr.errors import SeidrError
from seidr.llm.base import LLMBackend
from seidr.llm.client import Usage
from seidr.redact import Redactor
from seidr.search.tree import Program
from seidr.validate import validate_config

__all__ = ["develop", "adevelop", "Development"]


@dataclass(frozen=True)
class Development:
    """What `develop` returns: the best program, its scores, the whole program tree and the spend."""

    solved: bool
    code: str | None
    val_score: float
    test_pass_rate: float | None
    programs: list[Program]
    usage: Usage
    result: dict[str, Any]
    output_dir: Path

    def __repr__(self) -> str:
        return (f"Development(solved={self.solved}, val_score={self.val_score:.3f}, "
                f"test_pass_rate={self.test_pass_rate}, programs={len(self.programs)}, "
                f"llm_calls={self.usage.calls}, output_dir='{self.output_dir}')")


def develop(description: str | None = None, examples: Iterable[Any] | None = None, tests: Iterable[Any] | None = None,
            *, signature: str | None = None, asserts: Sequence[str] | None = None,
            hidden_asserts: Sequence[str] | None = None, name: str = "task", language: str = "python",
            model: str | LLMBackend = "local", critic: Critic | None = None, seed: int = 0,
            output_dir: str | Path | None = None, overrides: Sequence[str] = (), **search: Any) -> Development:
    """Synthesize a program for one task with the SEIDR loop; see the module docstring."""
    job = adevelop(description, examples, tests, signature=signature, asserts=asserts,
                   hidden_asserts=hidden_asserts, name=name, language=language, model=model, critic=critic,
                   seed=seed, output_dir=output_dir, overrides=overrides, **search)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(job)
    # Called from inside a running loop (a notebook): that loop cannot be blocked on, so the
    # search gets its own loop in a worker thread.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, job).result()


async def adevelop(description: str | None = None, examples: Iterable[Any] | None = None,
                   tests: Iterable[Any] | None = None, *, signature: str | None = None,
                   asserts: Sequence[str] | None = None, hidden_asserts: Sequence[str] | None = None,
                   name: str = "task", language: str = "python", model: str | LLMBackend = "local",
                   critic: Critic | None = None, seed: int = 0, output_dir: str | Path | None = None,
                   overrides: Sequence[str] = (), **search: Any) -> Development:
    """The async form of `develop`."""
    task = _task(name, description, examples, tests, signature, asserts, hidden_asserts, language)
    backend = model if not isinstance(model, str) else None
    cfg = compose_config(
        [f"language={language}", f"seed={seed}", *(f"search.{k}={v}" for k, v in search.items()),
         *([f"model={model}"] if isinstance(model, str) else []), *overrides])
    validate_config(cfg)  # before the numbers below are read: a bad value is one clear error
    problem = task_problem(task, dataset="api", valid_examples=int(cfg.search.valid_examples),
                           test_examples=int(cfg.search.test_examples), prompt_examples=int(cfg.search.prompt_examples))
    folder = Path(output_dir) if output_dir else (
        Path(cfg.paths.output_root) / "api" / name / time.strftime("%Y-%m-%d_%H-%M-%S"))
    # the API is an entry point like main.py: the environment's secrets are gathered here, once
    redactor = Redactor.from_sources(config=cfg, environ=os.environ, overrides=overrides)
    outcome: JobOutcome = await run_problem(cfg, problem, folder, backend=backend, critic=critic,
                                            redactor=redactor)
    result = outcome.result
    return Development(solved=result["solved"], code=result["best_program"], val_score=result["val_score"],
                       test_pass_rate=result["test_pass_rate"], programs=outcome.programs, usage=outcome.usage,
                       result=result, output_dir=folder)


def compose_config(overrides: Sequence[str]) -> DictConfig:
    """The same config main.py would build for these command-line overrides."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3", job_name="seidr_api"):
        return compose(config_name="config", overrides=list(overrides))


def _task(name, description, examples, tests, signature, asserts, hidden_asserts, language) -> dict[str, Any]:
    task: dict[str, Any] = {"name": name, "language": language}
    if description is not None:
        task["description"] = description
    if examples is not None:
        task["examples"] = [_pair(e) for e in examples]
    if tests is not None:
        task["tests"] = [_pair(e) for e in tests]
    if signature is not None:
        task["signature"] = signature
    if asserts is not None:
        task["asserts"] = list(asserts)
    if hidden_asserts is not None:
        task["hidden_asserts"] = list(hidden_asserts)
    problems = check_task(task)
    if problems:
        raise SeidrError("bad task: " + "; ".join(problems))
    return task


def _pair(example: Any) -> Any:
    if isinstance(example, (tuple, list)) and len(example) == 2:
        return {"input": _text(example[0]), "output": _text(example[1])}
    return example  # a dict, or something check_task will name as wrong


def _text(value: Any) -> Any:
    # Examples given as plain values ("2", 4) mean one line each
    if isinstance(value, str):
        return value if value.endswith("\n") or value == "" else value + "\n"
    return value if not isinstance(value, (int, float)) else f"{value}\n"
