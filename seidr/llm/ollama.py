"""An Ollama server through the official `ollama` client. Ollama's /api/chat has no `n`, so `n`
samples are `n` concurrent requests, each with its own seed."""

from __future__ import annotations

import asyncio
import json
from typing import Sequence

import httpx
import ollama
import pydantic

from seidr.llm.base import Completion, Message
from seidr.llm.retry import BadReply, ServerStatus, preview, with_retries

_COUNTS = ("prompt_eval_count", "eval_count")  # token counts a reply may carry: integers or absent


def _transient(error: BaseException) -> bool:
    if isinstance(error, (httpx.TransportError, ConnectionError)):
        return True
    return isinstance(error, (ollama.ResponseError, ServerStatus)) and (error.status_code >= 500
                                                                         or error.status_code == 429)


async def _check_chat_reply(response: httpx.Response) -> None:
    """An httpx response hook on /api/chat, so every fault goes through seidr's retry policy
    before the client parses the answer: an error status raises ServerStatus (which keeps the
    response, so Retry-After is honoured), and a 200 that is not a chat reply raises BadReply
    (where the client would fail with a bare decoding, JSON or validation error)."""
    if not response.url.path.endswith("/api/chat"):
        return
    try:
        body = (await response.aread()).decode("utf-8", errors="replace")
    except httpx.DecodingError:
        raise BadReply(f"answered {response.status_code} with a body that is not what its Content-Encoding "
                       f"({response.headers.get('content-encoding', '')}) says", "") from None
    if response.status_code != 200:
        raise ServerStatus(response.status_code, _said(body), response)
    try:
        reply = json.loads(body)
    except ValueError:
        raise BadReply("answered 200 with a body that is not JSON", body) from None
    message = reply.get("message") if isinstance(reply, dict) else None
    if not isinstance(message, dict) or not isinstance(message.get("content", ""), str):
        raise BadReply("answered 200 with no message", body)
    for count in _COUNTS:
        value = reply.get(count)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise BadReply(f"answered 200 with a {count} that is not a number", body)


def _said(body: str) -> str:
    """The error message in an Ollama error body ({"error": "..."}), else the body itself."""
    try:
        said = json.loads(body).get("error")
    except (ValueError, AttributeError):
        said = None
    return " ".join(str(said if said is not None else body).split())[:300]


class OllamaBackend:
    def __init__(self, name: str, host: str = "http://localhost:11434", timeout_s: float = 120.0,
                 max_retries: int = 2, retry_wait_s: float = 1.0) -> None:
        self.model_name = name
        self.host = host
        self.endpoint = f"{host.rstrip('/')}/api/chat"
        self.timeout_s = timeout_s
        self.attempts = max(1, max_retries + 1)
        self.retry_wait_s = retry_wait_s
        # the client's timeout is per read, a backstop; with_retries bounds the whole request
        self._client = ollama.AsyncClient(host=host, timeout=timeout_s,
                                          event_hooks={"response": [_check_chat_reply]})

    async def generate(self, messages: Sequence[Message], *, n: int, temperature: float, max_tokens: int,
                       seed: int | None) -> list[Completion]:
        chat = [{"role": m.role, "content": m.content} for m in messages]
        seeds = [None if seed is None else seed + i for i in range(n)]
        requests = [asyncio.ensure_future(self._one(chat, temperature, max_tokens, s)) for s in seeds]
        try:
            return list(await asyncio.gather(*requests))
        except BaseException:
            # one sample failed for good (or the search cancelled): its siblings must not go
            # on retrying after the job has ended
            for request in requests:
                request.cancel()
            await asyncio.gather(*requests, return_exceptions=True)
            raise

    async def _one(self, chat: list[dict[str, str]], temperature: float, max_tokens: int,
                   seed: int | None) -> Completion:
        options = {"temperature": temperature, "num_predict": max_tokens}
        if seed is not None:
            options["seed"] = seed

        async def call() -> ollama.ChatResponse:
            try:
                return await self._client.chat(model=self.model_name, messages=chat, options=options, stream=False)
            except pydantic.ValidationError as error:  # a field the hook does not check: the server's
                raise BadReply("answered 200 with a reply the ollama client cannot read", str(error)) from None

        response = await with_retries(call, transient=_transient, explain=self._explain, where=self.endpoint,
                                      attempts=self.attempts, wait_s=self.retry_wait_s, timeout_s=self.timeout_s)
        return Completion(
            text=response.message.content or "", finish_reason=response.done_reason,
            prompt_tokens=response.prompt_eval_count or 0, completion_tokens=response.eval_count or 0,
        )

    def _explain(self, error: BaseException, tries: str) -> str | None:
        if isinstance(error, (ollama.ResponseError, ServerStatus)):
            if error.status_code == 404:
                return (f"the Ollama server at {self.host} has no model {self.model_name!r}: run "
                        f"`ollama pull {self.model_name}` there, or choose another model.name")
            said = error.said if isinstance(error, ServerStatus) else " ".join(str(error.error).split())[:300]
            return f"{self.endpoint} answered HTTP {error.status_code} {tries}: {said}"
        if isinstance(error, (TimeoutError, httpx.TimeoutException)):
            return (f"{self.endpoint} gave no whole answer within model.timeout_s={self.timeout_s:g} s, {tries}; "
                    "check the server, or raise model.timeout_s for a slow model")
        if isinstance(error, (httpx.TransportError, ConnectionError)):
            return (f"cannot reach the Ollama server at {self.host} {tries} ({error}); "
                    "check model.host and that `ollama serve` runs there")
        if isinstance(error, BadReply):
            return f"{self.endpoint} {error.what} {tries}: {preview(error.body)}"
        return None

    async def aclose(self) -> None:
        # the client keeps an httpx.AsyncClient; close it so no connection outlives the run
        await self._client._client.aclose()
