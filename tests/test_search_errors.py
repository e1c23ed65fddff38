"""An LLM error on a draft or a repair request stops the job as an error, whatever the strategy:
result.json says `stopped: error` with the reason, the programs made before it are kept, and the
caller gets the error. A search that swallowed it would end as `no_replies` or `budget` instead."""

from __future__ import annotations

import json
from typing import Sequence

import pytest

from seidr import dev
from seidr.errors import SeidrError
from seidr.llm.base import Completion, Message
from tests.scripted import ScriptedBackend
from tests.test_dev_api import NO_CACHE, double_reply

REASON = "the model server at http://llm.invalid went away"


class FailingBackend(ScriptedBackend):
    """double_reply's model, raising SeidrError on the first request of step `fail_on`."""

    def __init__(self, fail_on: str) -> None:
        super().__init__(lambda step, messages, index: double_reply(step).replace("* 2", "* 3")
                         if step == "repair" else double_reply(step))
        self.fail_on = fail_on

    async def generate(self, messages: Sequence[Message], *, n: int, temperature: float, max_tokens: int,
                       seed: int | None) -> list[Completion]:
        replies = await super().generate(messages, n=n, temperature=temperature, max_tokens=max_tokens, seed=seed)
        if self.requests[-1][0] == self.fail_on:
            raise SeidrError(REASON)
        return replies


@pytest.mark.parametrize("strategy, fail_on, kept", [
    ("seidr", "draft", 0),
    ("seidr", "repair", 2),  # after both drafts and an explanation
    ("resample", "draft", 0),
    ("greedy", "draft", 0),
])
def test_an_llm_error_on_a_request_for_programs_stops_the_job_as_an_error(tmp_path, strategy, fail_on, kept):
    backend = FailingBackend(fail_on)
    with pytest.raises(SeidrError, match=REASON):
        dev.develop("Read an integer and print twice its value.", examples=[("2", "4"), ("-5", "-10")],
                    tests=[("21", "42")], model=backend, strategy=strategy, max_programs=8,
                    output_dir=tmp_path, overrides=NO_CACHE)
    recorded = tmp_path / "programs.jsonl"
    assert len(recorded.read_text().splitlines() if recorded.exists() else []) == kept
    if kept == 0:
        # a job that failed before its first program claims nothing: no result to read as a run
        assert not (tmp_path / "result.json").exists()
        return
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["stopped"] == "error" and REASON in result["error"]
    assert result["programs"] == kept and not result["solved"]


def test_an_llm_error_on_an_adaptive_repair_stops_the_job_as_an_error(tmp_path):
    crash = "```python\nprint(undefined_name)\n```"
    backend = FailingBackend("repair")
    backend.reply = lambda step, messages, index: crash
    with pytest.raises(SeidrError, match=REASON):
        dev.develop("Read an integer and print twice its value.", examples=[("2", "4"), ("-5", "-10")],
                    model=backend, strategy="adaptive", max_programs=8, output_dir=tmp_path,
                    overrides=NO_CACHE)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["stopped"] == "error" and REASON in result["error"] and result["programs"] == 2
    assert [step for step, *_ in backend.requests] == ["draft", "draft", "repair"]
