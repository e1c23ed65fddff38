"""A resumed job reuses the verdicts it recorded: the programs of the earlier run are not run
again (their replies are replayed, their verdicts come from programs.jsonl), only new ones are."""

from __future__ import annotations

import json
from typing import Sequence

import pytest

import seidr.app
from seidr import dev
from seidr.errors import SeidrError
from seidr.llm.base import Completion, Message
from seidr.search.tree import Program
from tests.scripted import ScriptedBackend
from tests.test_dev_api import DOUBLE_RIGHT, NO_CACHE

TASK = dict(description="Read an integer and print twice its value.",
            examples=[("2", "4"), ("-5", "-10"), ("7", "14")], tests=[("21", "42")])


class SeededDrafts(ScriptedBackend):
    """A different wrong draft per request seed (the same on a replay), right repairs; it can
    fail the first repair request, as a server that went away mid-job."""

    def __init__(self, fail_repairs: bool) -> None:
        super().__init__(lambda step, messages, index: "It adds instead of doubling." if step == "explain"
                         else DOUBLE_RIGHT)
        self.fail_repairs = fail_repairs

    async def generate(self, messages: Sequence[Message], *, n: int, temperature: float, max_tokens: int,
                       seed: int | None) -> list[Completion]:
        replies = await super().generate(messages, n=n, temperature=temperature, max_tokens=max_tokens, seed=seed)
        step = self.requests[-1][0]
        if step == "repair" and self.fail_repairs:
            raise SeidrError("the model server went away")
        if step == "draft":
            return [Completion(f"```python\n# seed {seed} choice {i}\nprint(int(input()) + 2)\n```", "stop", 10, 5)
                    for i in range(n)]
        return replies


@pytest.fixture
def executed(monkeypatch) -> list[str]:
    """Every program code the job's executor runs (the preflight's canaries included)."""
    codes: list[str] = []
    real = seidr.app.make_executor

    def make_executor(cfg, output_dir=None):
        executor = real(cfg, output_dir)
        run = executor.run

        async def counting_run(code, tests, mode, **kwargs):
            codes.append(code)
            return await run(code, tests, mode, **kwargs)

        executor.run = counting_run
        return executor

    monkeypatch.setattr(seidr.app, "make_executor", make_executor)
    return codes


def test_a_resumed_job_does_not_run_its_recorded_programs_again(tmp_path, executed):
    with pytest.raises(SeidrError, match="went away"):
        dev.develop(**TASK, model=SeededDrafts(fail_repairs=True), max_programs=6, output_dir=tmp_path,
                    overrides=NO_CACHE)
    recorded = [json.loads(line) for line in (tmp_path / "programs.jsonl").read_text().splitlines()]
    drafts = [program["code"] for program in recorded]
    assert len(drafts) == 2 and len(set(drafts)) == 2 and all(code in executed for code in drafts)
    executed.clear()

    result = dev.develop(**TASK, model=SeededDrafts(fail_repairs=False), max_programs=6, output_dir=tmp_path,
                         overrides=NO_CACHE)
    assert result.solved and [p.code for p in result.programs[:2]] == drafts
    assert not any(code in executed for code in drafts), "a recorded program was run again"
    assert result.code in executed  # the new programs do run
    # both drafts' verdicts on the three validation tests came from the record
    assert result.result["cached_verdicts"] >= 2 * 3
    assert [p.outcomes for p in result.programs[:2]] == [p.outcomes for p in map(
        Program.from_record, recorded)]
