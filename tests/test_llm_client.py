"""The LLM client: cache, accounting, cost, temperature schedule; and replies that hold no program."""

from __future__ import annotations

import asyncio
import json

import pytest

from seidr.llm.base import Message
from seidr.llm.cache import ResponseCache
from seidr.llm.client import LLMClient
from seidr.prompts.extract import reply_issue
from tests.scripted import GatedBackend, ScriptedBackend, until
from tests.test_cli import FIZZ_BUZZ_WRONG, read_run, run_main, seidr_reply

ASK = [Message("user", "write code")]


def client(backend, **kwargs):
    options = dict(temperature=0.8, max_tokens=10, max_concurrency=2, seed=1)
    options.update(kwargs)
    return LLMClient(backend, **options)


def test_cache_replays_without_calling_and_a_new_seed_calls_again(tmp_path):
    backend = ScriptedBackend(lambda step, messages, index: f"reply {index}")
    first = client(backend, cache=ResponseCache(tmp_path))
    replies = asyncio.run(first.sample(ASK, n=2))
    assert first.usage.calls == 1 and len(backend.requests) == 1

    again = client(backend, cache=ResponseCache(tmp_path))
    assert asyncio.run(again.sample(ASK, n=2)) == replies
    assert again.usage.calls == 0 and again.usage.cache_hits == 1 and len(backend.requests) == 1

    other_seed = client(backend, cache=ResponseCache(tmp_path), seed=2)
    asyncio.run(other_seed.sample(ASK, n=2))
    assert other_seed.usage.calls == 1 and len(backend.requests) == 2


class OtherScripted(ScriptedBackend):
    """Another backend type with the same model name."""


def scripted(model_name: str = "scripted", kind: type = ScriptedBackend, base_url: str = "http://a/v1"):
    backend = kind(lambda step, messages, index: f"reply {index}")
    backend.model_name = model_name
    backend.base_url = base_url
    return backend


@pytest.mark.parametrize("changed, hits", [
    ({}, 1),
    ({"backend": lambda: scripted("other-model")}, 0),
    ({"temperature": 0.81}, 0),
    ({"max_tokens": 11}, 0),
    ({"backend": lambda: scripted(kind=OtherScripted)}, 0),
    ({"backend": lambda: scripted(base_url="http://b/v1")}, 0),
], ids=["same", "model", "temperature", "max_tokens", "backend-type", "endpoint"])
def test_the_cache_key_holds_model_temperature_max_tokens_and_backend(tmp_path, changed, hits):
    first = client(scripted(), cache=ResponseCache(tmp_path))
    asyncio.run(first.sample(ASK, n=2))
    options = dict(changed)
    second = client(options.pop("backend", scripted)(), cache=ResponseCache(tmp_path), **options)
    asyncio.run(second.sample(ASK, n=2))
    assert (second.usage.cache_hits, second.usage.calls) == (hits, 1 - hits)
    assert len(second.backend.requests) == 1 - hits


def test_at_most_max_concurrency_requests_are_in_flight_and_that_many_when_there_is_work():
    async def go():
        backend = GatedBackend(lambda step, messages, index: "x")
        llm = client(backend, max_concurrency=3)
        asked = [asyncio.ensure_future(llm.sample([Message("user", f"question {k}")])) for k in range(8)]
        for answered in range(8):
            await until(lambda: sum(g.answered for g in backend.gates) == answered
                        and len(backend.waiting) == min(3, 8 - answered), f"{min(3, 8 - answered)} in flight")
            backend.waiting[-1].opened.set()  # the newest first: the limit holds whatever order they end in
        await asyncio.gather(*asked)
        return backend

    backend = asyncio.run(go())
    assert backend.peak_waiting == 3 and len(backend.gates) == 8


def test_a_torn_cache_file_is_ignored_and_rewritten(tmp_path):
    backend = ScriptedBackend(lambda step, messages, index: "fresh")
    asyncio.run(client(backend, cache=ResponseCache(tmp_path)).sample(ASK))
    [path] = list(tmp_path.rglob("*.json"))
    path.write_text(path.read_text()[:25])  # a kill mid-write, on a file system without atomic rename
    replay = client(backend, cache=ResponseCache(tmp_path))
    assert [c.text for c in asyncio.run(replay.sample(ASK))] == ["fresh"] and replay.usage.calls == 1
    assert json.loads(path.read_text())["completions"][0]["text"] == "fresh"
    record = json.loads(path.read_text())
    record["completions"][0]["text"] = "edited"
    path.write_text(json.dumps(record))  # content that no longer matches its checksum
    assert client(backend, cache=ResponseCache(tmp_path)).cache.get(record["key"]) is None


def test_cost_from_the_price_table_and_none_without_a_price():
    backend = ScriptedBackend(lambda step, messages, index: "x")  # 10 prompt + 5 completion tokens per reply
    priced = client(backend, price={"prompt": 1.0, "completion": 2.0})
    asyncio.run(priced.sample(ASK, n=2))
    assert priced.usage.cost_usd == pytest.approx((20 * 1.0 + 10 * 2.0) / 1e6)
    unpriced = client(backend)
    asyncio.run(unpriced.sample(ASK))
    assert unpriced.usage.cost_usd is None and unpriced.usage.as_dict()["cost_usd"] is None


def test_ramp_starts_greedy_and_heats_up_per_conversation():
    backend = ScriptedBackend(lambda step, messages, index: "x")
    llm = client(backend, schedule="ramp", temperature=1.0)
    for n in (1, 1, 2, 4):
        asyncio.run(llm.sample(ASK, n=n))
    asyncio.run(llm.sample([Message("user", "another prompt")], n=2))
    assert [t for *_, t in backend.requests] == [0.0, 0.5, 0.75, 0.875, 0.5]
    fixed = client(backend, temperature=0.3)
    asyncio.run(fixed.sample(ASK, n=4))
    assert backend.requests[-1][-1] == 0.3


def test_reply_issues_are_named():
    assert reply_issue("", "stop") == "empty"
    assert reply_issue("```python\nprint(1", "length") == "truncated"
    assert reply_issue("print(1)", "stop") == "no_code_block"
    assert reply_issue("```python\nprint(1)\n```", "stop") is None


def test_rerun_of_the_same_config_makes_no_llm_call(data_dir, tmp_path):
    from tests.servers.openai_server import OpenAIServer

    with OpenAIServer(seidr_reply, model="m") as server:
        args = ["model=openai", "model.name=m", "model.api_key=k", f"model.base_url={server.base_url}",
                "search.max_programs=12", f"model.cache_dir={tmp_path / 'cache'}"]
        first = run_main(*args, data_dir=data_dir, output_root=tmp_path / "a")
        calls_after_first = len(server.posts("/v1/chat/completions"))
        second = run_main(*args, data_dir=data_dir, output_root=tmp_path / "b")
        assert len(server.posts("/v1/chat/completions")) == calls_after_first
        third = run_main(*args, "seed=5", data_dir=data_dir, output_root=tmp_path / "c")
        assert len(server.posts("/v1/chat/completions")) > calls_after_first
    assert first.returncode == second.returncode == third.returncode == 0
    (a, programs_a), (b, programs_b) = read_run(tmp_path / "a"), read_run(tmp_path / "b")
    assert b["llm_calls"] == 0 and b["cache_hits"] == a["llm_calls"] > 0
    assert [p["code"] for p in programs_a] == [p["code"] for p in programs_b] and a["solved"] == b["solved"]


def test_code_less_replies_are_kept_as_failing_programs_or_dropped(data_dir, tmp_path):
    from tests.servers.openai_server import OpenAIServer

    def reply(messages, body, index):
        return "I cannot help with that." if index == 0 else FIZZ_BUZZ_WRONG

    with OpenAIServer(reply, model="m") as server:
        args = ["model=openai", "model.name=m", "model.api_key=k", f"model.base_url={server.base_url}",
                "search.max_programs=6", "search.greedy_first_draft=false", "model.cache=false"]
        kept = run_main(*args, data_dir=data_dir, output_root=tmp_path / "keep")
        dropped = run_main(*args, "search.bad_replies=drop", data_dir=data_dir, output_root=tmp_path / "drop")
    assert kept.returncode == dropped.returncode == 0, kept.stderr + dropped.stderr
    _, kept_programs = read_run(tmp_path / "keep")
    assert any(p["reply_issue"] == "no_code_block" and p["val_score"] == 0 for p in kept_programs)
    result, dropped_programs = read_run(tmp_path / "drop")
    assert all(p["reply_issue"] is None for p in dropped_programs) and result["dropped_replies"] > 0


def test_a_reply_in_the_wrong_language_becomes_a_failing_program(tmp_path):
    from seidr import dev

    backend = ScriptedBackend(lambda step, messages, index: "```javascript\nconsole.log(2 * readline());\n```")
    result = dev.develop("Double it.", examples=[("1", "2")], model=backend, max_programs=3, output_dir=tmp_path,
                         overrides=["model.cache=false", "tracking=none"])
    assert not result.solved and len(result.programs) == 3
    # the JavaScript block is taken as the program and run as Python: it gets as far as `console`
    # (a sandbox that failed to run it would say "error" too, with another reason)
    for program in result.programs:
        assert program.code == "console.log(2 * readline());\n"
        assert [o.status for o in program.outcomes] == ["error"]
        assert "NameError: name 'console' is not defined" in program.outcomes[0].error
