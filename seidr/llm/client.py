"""The one place every LLM call goes through: a concurrency limit and the call/token accounts."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Sequence

from seidr.llm.base import Completion, LLMBackend, Message


@dataclass
class Usage:
    """What the run has spent on the LLM so far."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class LLMClient:
    """Wraps a backend with `max_concurrency` requests in flight and usage accounting.

    Seeds: each request gets `seed + k`, with k counted in the order requests are made (not the
    order they finish), so a rerun issues the same seeds for the same requests."""

    def __init__(self, backend: LLMBackend, *, temperature: float, max_tokens: int, max_concurrency: int,
                 seed: int | None) -> None:
        self.backend = backend
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.seed = seed
        self.usage = Usage()
        self._slots = asyncio.Semaphore(max(1, max_concurrency))
        self._requests_made = 0

    @property
    def model_name(self) -> str:
        return self.backend.model_name

    async def sample(self, messages: Sequence[Message], n: int = 1,
                     temperature: float | None = None) -> list[Completion]:
        """`n` replies to one conversation, at the client's temperature unless one is given."""
        seed = None if self.seed is None else self.seed * 100_003 + self._requests_made
        self._requests_made += 1
        async with self._slots:
            completions = await self.backend.generate(
                messages, n=n, temperature=self.temperature if temperature is None else temperature,
                max_tokens=self.max_tokens, seed=seed,
            )
        self.usage.calls += 1
        self.usage.prompt_tokens += sum(c.prompt_tokens for c in completions)
        self.usage.completion_tokens += sum(c.completion_tokens for c in completions)
        return completions

    async def aclose(self) -> None:
        await self.backend.aclose()
