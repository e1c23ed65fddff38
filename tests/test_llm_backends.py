"""The OpenAI and Ollama backends through their real clients against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import time

import ollama
import pytest

from seidr.errors import SeidrError
from seidr.llm.base import Message
from seidr.llm.ollama import OllamaBackend
from seidr.llm.openai_compat import OpenAIBackend
from tests.servers.ollama_server import OllamaServer
from tests.servers.openai_server import OpenAIServer

MESSAGES = [Message("system", "be brief"), Message("user", "write code")]


def echo(messages, body, index=0):
    return f"reply {index} to {messages[-1]['content']}"


def generate(backend, n=1, seed=7, temperature=0.5, max_tokens=64):
    async def go():
        try:
            return await backend.generate(MESSAGES, n=n, temperature=temperature, max_tokens=max_tokens, seed=seed)
        finally:
            await backend.aclose()

    return asyncio.run(go())


def openai_backend(server, **kwargs):
    return OpenAIBackend("test-model", base_url=server.base_url, api_key="sk-local", retry_wait_s=0.01, **kwargs)


def dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_openai_n_completions_in_one_request_with_parameters_passed_through():
    with OpenAIServer(echo) as server:
        completions = generate(openai_backend(server), n=3, seed=11, temperature=0.3, max_tokens=50)
    assert [c.text for c in completions] == [f"reply {i} to write code" for i in range(3)]
    [request] = server.posts("/v1/chat/completions")
    assert request.body["n"] == 3 and request.body["temperature"] == 0.3 and request.body["max_tokens"] == 50
    assert request.body["seed"] == 11 and request.body["model"] == "test-model"
    assert request.body["messages"] == [{"role": "system", "content": "be brief"},
                                        {"role": "user", "content": "write code"}]
    assert request.headers["authorization"] == "Bearer sk-local"
    assert completions[0].prompt_tokens == 4 and sum(c.prompt_tokens for c in completions) == 4
    assert sum(c.completion_tokens for c in completions) == 3 * 5
    assert all(c.finish_reason == "stop" for c in completions)


def test_openai_server_that_ignores_n_is_asked_again():
    with OpenAIServer(echo, honour_n=False) as server:
        completions = generate(openai_backend(server), n=3, seed=5)
    assert len(completions) == 3
    requests = server.posts("/v1/chat/completions")
    assert [r.body["n"] for r in requests] == [3, 2, 1] and [r.body["seed"] for r in requests] == [5, 6, 7]


def test_openai_retries_5xx_then_succeeds():
    with OpenAIServer(echo) as server:
        server.fail_next(2, 500)
        [completion] = generate(openai_backend(server))
    assert completion.text.startswith("reply 0") and len(server.posts("/v1/chat/completions")) == 3


def test_openai_honours_retry_after_on_429():
    answered_at = []

    def reply(messages, body, index):
        answered_at.append(time.monotonic())
        return "after the wait"

    with OpenAIServer(reply) as server:
        server.fail_next(1, 429, {"error": {"message": "slow down", "type": "rate_limit"}}, {"Retry-After": "1"})
        started = time.monotonic()
        [completion] = generate(openai_backend(server))  # its own backoff would be ~0.01 s
    assert completion.text == "after the wait" and len(server.posts("/v1/chat/completions")) == 2
    # a lower bound the protocol sets, not a speed limit: the retry came at least 1 s after the 429
    assert answered_at[0] - started >= 1.0


def test_openai_persistent_5xx_names_endpoint_and_status():
    with OpenAIServer(echo) as server:
        server.fail_next(10, 503)
        with pytest.raises(SeidrError) as error:
            generate(openai_backend(server, max_retries=2))
    assert "503" in str(error.value) and server.base_url in str(error.value)
    assert len(server.posts("/v1/chat/completions")) == 3


def test_openai_unreachable_server_names_the_url():
    url = f"http://127.0.0.1:{dead_port()}/v1"
    backend = OpenAIBackend("m", base_url=url, api_key="x", max_retries=1, retry_wait_s=0.01)
    with pytest.raises(SeidrError) as error:
        generate(backend)
    message = str(error.value)
    assert url in message and "model.base_url" in message and "after 2 tries" in message and "\n" not in message


def test_openai_missing_key_and_rejected_key():
    with pytest.raises(SeidrError, match="OPENAI_API_KEY"):
        OpenAIBackend("m", api_key=None)
    with OpenAIServer(echo) as server:
        server.fail_next(1, 401, {"error": {"message": "bad key", "type": "invalid_request_error"}})
        with pytest.raises(SeidrError, match="rejected the API key"):
            generate(openai_backend(server))


def test_openai_unknown_model_is_named():
    with OpenAIServer(echo) as server:
        backend = OpenAIBackend("gpt-nope", base_url=server.base_url, api_key="x", retry_wait_s=0.01)
        with pytest.raises(SeidrError, match="gpt-nope"):
            generate(backend)


def ollama_backend(server, name="llama3", **kwargs):
    return OllamaBackend(name, host=server.host, retry_wait_s=0.01, **kwargs)


def test_ollama_fans_n_out_with_distinct_seeds_and_options():
    with OllamaServer(lambda messages, body: f"seed {body['options']['seed']}") as server:
        completions = generate(ollama_backend(server), n=3, seed=20, temperature=0.4, max_tokens=30)
    assert sorted(c.text for c in completions) == ["seed 20", "seed 21", "seed 22"]
    requests = server.posts("/api/chat")
    assert len(requests) == 3
    assert all(r.body["options"]["temperature"] == 0.4 and r.body["options"]["num_predict"] == 30 for r in requests)
    assert all(r.body["stream"] is False and r.body["model"] == "llama3" for r in requests)
    assert requests[0].body["messages"][0] == {"role": "system", "content": "be brief"}
    assert all(c.prompt_tokens == 4 and c.completion_tokens == 2 and c.finish_reason == "stop" for c in completions)


def test_ollama_reply_cut_by_the_token_limit_says_length():
    with OllamaServer(lambda messages, body: "one two three four five") as server:
        [completion] = generate(ollama_backend(server), max_tokens=2)
    assert completion.text == "one two" and completion.finish_reason == "length"


def test_ollama_unknown_model_says_to_pull_it():
    with OllamaServer(echo) as server:
        with pytest.raises(SeidrError, match="ollama pull mistral"):
            generate(ollama_backend(server, name="mistral"))


def test_ollama_retries_5xx():
    with OllamaServer(lambda messages, body: "fine") as server:
        server.fail_next(2, 500, {"error": "busy"})
        [completion] = generate(ollama_backend(server))
    assert completion.text == "fine" and len(server.posts("/api/chat")) == 3


def test_ollama_unreachable_host_is_named():
    host = f"http://127.0.0.1:{dead_port()}"
    with pytest.raises(SeidrError) as error:
        generate(OllamaBackend("llama3", host=host, max_retries=1, retry_wait_s=0.01))
    assert host in str(error.value) and "model.host" in str(error.value)


def test_the_real_ollama_client_lists_and_streams_from_the_test_server():
    with OllamaServer(lambda messages, body: "streamed reply here", models=("llama3:latest", "qwen2.5-coder:7b")) \
            as server:
        client = ollama.Client(host=server.host)
        assert [m.model for m in client.list().models] == ["llama3:latest", "qwen2.5-coder:7b"]
        chunks = list(client.chat(model="llama3", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert "".join(c.message.content for c in chunks).strip() == "streamed reply here"
    assert chunks[-1].done and chunks[-1].done_reason == "stop" and chunks[-1].eval_count == 3


def test_openai_server_slower_than_the_timeout_is_given_up_on_not_waited_for():
    with OpenAIServer(echo) as server:
        server.delay_s = 30.0  # it would answer, after the client's deadline
        backend = OpenAIBackend("test-model", base_url=server.base_url, api_key="k", timeout_s=0.3, max_retries=1,
                                retry_wait_s=0.01)
        with pytest.raises(SeidrError) as error:
            generate(backend)
    assert f"{server.base_url}/chat/completions gave no whole answer within model.timeout_s=0.3 s, after 2 tries" \
        in str(error.value)
    assert len(server.posts("/v1/chat/completions")) == 2
