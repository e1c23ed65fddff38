"""An Ollama server through the official `ollama` client. Ollama's /api/chat has no `n`, so `n`
samples are `n` concurrent requests, each with its own seed."""

from __future__ import annotations

import asyncio
from typing import Sequence

import httpx
import ollama

from seidr.errors import SeidrError
from seidr.llm.base import Completion, Message
from seidr.llm.retry import with_retries


def _transient(error: BaseException) -> bool:
    if isinstance(error, (httpx.TransportError, ConnectionError)):
        return True
    return isinstance(error, ollama.ResponseError) and (error.status_code >= 500 or error.status_code == 429)


class OllamaBackend:
    def __init__(self, name: str, host: str = "http://localhost:11434", timeout_s: float = 300.0,
                 max_retries: int = 4, retry_wait_s: float = 1.0) -> None:
        self.model_name = name
        self.host = host
        self.attempts = max(1, max_retries + 1)
        self.retry_wait_s = retry_wait_s
        self._client = ollama.AsyncClient(host=host, timeout=timeout_s)

    async def generate(self, messages: Sequence[Message], *, n: int, temperature: float, max_tokens: int,
                       seed: int | None) -> list[Completion]:
        chat = [{"role": m.role, "content": m.content} for m in messages]
        return list(await asyncio.gather(*(
            self._one(chat, temperature, max_tokens, None if seed is None else seed + index) for index in range(n))))

    async def _one(self, chat: list[dict[str, str]], temperature: float, max_tokens: int,
                   seed: int | None) -> Completion:
        options = {"temperature": temperature, "num_predict": max_tokens}
        if seed is not None:
            options["seed"] = seed

        async def call() -> ollama.ChatResponse:
            return await self._client.chat(model=self.model_name, messages=chat, options=options, stream=False)

        try:
            response = await with_retries(call, transient=_transient, attempts=self.attempts, wait_s=self.retry_wait_s)
        except ollama.ResponseError as error:
            if error.status_code == 404:
                raise SeidrError(f"the Ollama server at {self.host} has no model {self.model_name!r}: run "
                                 f"`ollama pull {self.model_name}` there, or choose another model.name") from error
            raise SeidrError(f"the Ollama server at {self.host} answered HTTP {error.status_code} after "
                             f"{self.attempts} tries: {error.error}") from error
        except (httpx.TransportError, ConnectionError) as error:
            raise SeidrError(f"cannot reach the Ollama server at {self.host} after {self.attempts} tries ({error}); "
                             "check model.host and that `ollama serve` runs there") from error
        return Completion(
            text=response.message.content or "", finish_reason=response.done_reason,
            prompt_tokens=response.prompt_eval_count or 0, completion_tokens=response.eval_count or 0,
        )

    async def aclose(self) -> None:
        # the client keeps an httpx.AsyncClient; close it so no connection outlives the run
        await self._client._client.aclose()
