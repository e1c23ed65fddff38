"""Programs as nodes of the search tree (each knows its parent) with their validation verdicts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

from seidr.execution.base import TestOutcome
from seidr.problem import Example

Kind = Literal["draft", "repair"]


@dataclass(frozen=True)
class Program:
    """One generated program and how it did on every validation test."""

    id: int
    parent_id: int | None
    kind: Kind
    generation: int
    code: str
    outcomes: tuple[TestOutcome, ...]
    explanation: str | None = None
    finish_reason: str | None = None
    reply_issue: str | None = None  # "empty", "truncated", "no_code_block", ...: see prompts.extract
    tokens: int = 0  # completion tokens of the reply it came from

    @property
    def scores(self) -> list[float]:
        return [o.score for o in self.outcomes]

    @property
    def score(self) -> float:
        """Mean partial-credit score over validation tests: what beam search ranks by."""
        return sum(self.scores) / len(self.outcomes) if self.outcomes else 0.0

    @property
    def pass_rate(self) -> float:
        return sum(o.passed for o in self.outcomes) / len(self.outcomes) if self.outcomes else 0.0

    @property
    def solved(self) -> bool:
        return bool(self.outcomes) and all(o.passed for o in self.outcomes)

    def worst_failure(self) -> int | None:
        """Index of the failing test with the lowest score (the first such), None if all pass."""
        failing = [i for i, o in enumerate(self.outcomes) if not o.passed]
        return min(failing, key=lambda i: self.outcomes[i].score) if failing else None

    def record(self, tests: Sequence[Example] = ()) -> dict[str, Any]:
        """The JSON line written to programs.jsonl. Besides the verdicts it keeps what the
        explain step shows of the worst failing test (`tests`: the validation tests, for its input
        and expected output), so a resumed run rebuilds the same prompts and a viewer can show them."""
        worst = self.worst_failure()
        feedback = None if worst is None else {
            "test": worst, "actual": self.outcomes[worst].actual, "error": self.outcomes[worst].error,
            **({"input": tests[worst].input, "expected": tests[worst].output} if worst < len(tests) else {})}
        return {
            "id": self.id,
            "parent_id": self.parent_id,
            "kind": self.kind,
            "generation": self.generation,
            "explanation": self.explanation,
            "code": self.code,
            "finish_reason": self.finish_reason,
            "reply_issue": self.reply_issue,
            "tokens": self.tokens,
            "val_score": self.score,
            "val_pass_rate": self.pass_rate,
            "solved": self.solved,
            "passed": [o.passed for o in self.outcomes],
            "scores": self.scores,
            "statuses": [o.status for o in self.outcomes],
            "feedback": feedback,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "Program":
        """The program a programs.jsonl line describes (outputs kept only for its feedback test)."""
        feedback = record.get("feedback") or {}
        outcomes = tuple(
            TestOutcome(status, score, actual=feedback.get("actual", "") if i == feedback.get("test") else "",
                        error=feedback.get("error", "") if i == feedback.get("test") else "")
            for i, (status, score) in enumerate(zip(record["statuses"], record["scores"])))
        return cls(id=record["id"], parent_id=record["parent_id"], kind=record["kind"],
                   generation=record["generation"], code=record["code"], outcomes=outcomes,
                   explanation=record.get("explanation"), finish_reason=record.get("finish_reason"),
                   reply_issue=record.get("reply_issue"), tokens=record.get("tokens", 0))


def better(a: Program, b: Program | None) -> bool:
    """Whether `a` beats the best so far `b`: higher mean score, earlier program on ties."""
    return b is None or a.score > b.score or (a.score == b.score and a.id < b.id)
