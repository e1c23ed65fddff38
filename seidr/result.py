"""result.json: one job's summary, its fields defined once.

Every key a job writes is a field of `JobResult`, with what it holds in the field's `doc`; the
docs' list of result.json's fields is this module's output (`python -m seidr.result`), and a test
checks that they agree. Readers (report, compare, the viewer) take result.json as a plain dict,
so a file written by an older seidr, with fewer keys, still reads."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

STOPPED_REASONS = ("solved", "budget", "no_replies", "error")


def _doc(text: str) -> Any:
    return field(metadata={"doc": text})


@dataclass(frozen=True)
class JobResult:
    """What one job found, written to result.json when it ends (never for a job that made no
    program). Every figure comes from the programs recorded in programs.jsonl."""

    problem: str = _doc("the problem's name (HumanEval's canonical id, `HumanEval/0`)")
    dataset: str = _doc("the dataset it comes from (`psb2`, `humaneval`, `jsonl`)")
    split: str = _doc("how its examples were split into validation and held-out tests (`heldout`, `paper`, "
                     "`edge+random/random` for PSB2, `valid=test`)")
    language: str = _doc("the language programs were written in (`python`, `cpp`)")
    model: str = _doc("the model that wrote drafts and repairs")
    seed: int = _doc("the job's seed (the split, model sampling, lexicase)")
    selection: str = _doc("the selection that ranked candidates (`beam`, `lexicase`)")
    strategy: str = _doc("the search strategy (`seidr`, `resample`, `adaptive`, ...)")
    solved: bool = _doc("the best program passes every validation test, and the job stopped without an error")
    val_score: float = _doc("the best program's mean partial credit on the validation tests (0-1)")
    val_pass_rate: float = _doc("the share of validation tests the best program passes")
    test_pass_rate: float | None = _doc("the best program's pass rate on the held-out tests; null when the "
                                        "problem has none or the job stopped on an error")
    overfit: bool = _doc("solved on validation but failing some held-out test")
    valid_examples: int = _doc("validation tests")
    test_examples: int = _doc("held-out tests")
    programs: int = _doc("programs recorded in programs.jsonl")
    max_programs: int = _doc("the budget: programs the search could make")
    branching_factor: int = _doc("`search.branching_factor`")
    debug_prompt_id: int = _doc("which repair prompt the search used (0-10)")
    drafts_per_prompt: int = _doc("the tree's shape: drafts asked for per prompt")
    explanations_per_program: int = _doc("explanations asked for per failing program")
    repairs_per_explanation: int = _doc("repairs asked for per explanation")
    beam_width: int = _doc("programs kept per generation")
    llm_calls: int = _doc("paid LLM calls over every run of the job in its folder, both models' "
                          "(a cache hit is not paid)")
    prompt_tokens: int = _doc("prompt tokens this run (both models')")
    completion_tokens: int = _doc("completion tokens this run (both models')")
    cache_hits: int = _doc("requests the response cache answered")
    cost_usd: float | None = _doc("what the calls cost over every run, from `model.price`; null when "
                                  "no model has a price")
    llm_calls_this_run: int = _doc("paid LLM calls in this run only (a resumed job replays earlier replies)")
    explain_model: str | None = _doc("the second model that wrote explanations (`explain_model`), or null")
    explain_llm_calls: int | None = _doc("its share of `llm_calls` this run (null without it)")
    explain_prompt_tokens: int | None = _doc("its share of `prompt_tokens`")
    explain_completion_tokens: int | None = _doc("its share of `completion_tokens`")
    explain_cache_hits: int | None = _doc("its share of `cache_hits`")
    explain_cost_usd: float | None = _doc("its share of `cost_usd` this run")
    wall_s: float = _doc("the job's wall time in seconds, this run")
    best_program_id: int | None = _doc("the best program's `id` in programs.jsonl (null: no program)")
    best_program: str | None = _doc("the best program's code")
    dropped_replies: int = _doc("LLM replies with no program in them")
    dedupe: bool = _doc("whether programs already seen were skipped (`search.dedupe`)")
    duplicates: int = _doc("programs skipped as already seen")
    cached_verdicts: int = _doc("programs whose verdicts came from an earlier identical program or run")
    isolation: str = _doc("the sandbox level programs ran at (`process`, `namespace`)")
    preflight_s: float = _doc("seconds the sandbox's check before the search took")
    stopped: str = _doc("why the search ended: " + ", ".join(f"`{reason}`" for reason in STOPPED_REASONS))
    error: str | None = _doc("the error that stopped the job (with `stopped: error`), else null")
    warnings: list[str] = _doc("what seidr warned about the problem (e.g. too few examples for the split)")

    def __post_init__(self) -> None:
        if self.stopped not in STOPPED_REASONS:
            raise ValueError(f"stopped must be one of {STOPPED_REASONS}, not {self.stopped!r}")
        if self.solved and self.stopped == "error":
            raise ValueError("a job that stopped on an error claims no solve")

    def as_dict(self) -> dict[str, Any]:
        """result.json's content, keys in the order above."""
        return dataclasses.asdict(self)


def fields_table() -> str:
    """result.json's fields as a Markdown table (what the docs list)."""
    rows = ["| key | what it holds |", "|---|---|"]
    rows += [f"| `{item.name}` | {item.metadata['doc']} |" for item in dataclasses.fields(JobResult)]
    return "\n".join(rows)


if __name__ == "__main__":
    print(fields_table())
