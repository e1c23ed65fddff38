"""The one place every LLM call goes through: the response cache, the concurrency limit, the
temperature schedule, and the call/token/cost accounts."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from seidr.llm.base import Completion, LLMBackend, Message, storable
from seidr.llm.cache import ResponseCache, request_key

SCHEDULES = ("fixed", "ramp")
# Seed streams and where each starts: "draft" starts where the request order does, so a search's
# n-th draft request gets the seed a drafts-only search (resample) gives its n-th request;
# "repair" starts far from it, so no repair shares a draft's seed.
SEED_STREAMS = {"draft": 0, "repair": 50_000}


@dataclass
class Usage:
    """What the run has spent on the LLM. Tokens count every reply the search used, replayed
    from the cache or not (what the search consumed); calls and cost count real requests only."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_hits: int = 0
    cost_usd: float | None = None  # None: the model has no price in the table

    def as_dict(self) -> dict[str, Any]:
        return {"llm_calls": self.calls, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "cache_hits": self.cache_hits,
                "cost_usd": None if self.cost_usd is None else round(self.cost_usd, 6)}

    def __add__(self, other: Usage) -> Usage:
        """Two models' spending together (a search with a second model for explanations). The
        cost is the sum of the priced ones; None only when neither model has a price."""
        known = [cost for cost in (self.cost_usd, other.cost_usd) if cost is not None]
        return Usage(calls=self.calls + other.calls, prompt_tokens=self.prompt_tokens + other.prompt_tokens,
                     completion_tokens=self.completion_tokens + other.completion_tokens,
                     cache_hits=self.cache_hits + other.cache_hits, cost_usd=sum(known) if known else None)


def backend_identity(backend: LLMBackend) -> str:
    """What distinguishes one backend's replies from another's, for the cache key."""
    where = next((str(getattr(backend, attr)) for attr in ("base_url", "host", "path") if hasattr(backend, attr)), "")
    return f"{type(backend).__name__}|{where}|{backend.model_name}"


class LLMClient:
    """Wraps a backend with `max_concurrency` requests in flight, an optional response cache, a
    temperature schedule and usage accounting.

    Seeds: each request gets `seed * 100003 + k`, with k counted in the order requests are made
    (not the order they finish), so a rerun issues the same seeds for the same requests and
    replays them from the cache. A request may name a seed stream instead: k then counts that
    stream's requests only (plus the stream's offset), so the drafts of a search that also
    repairs get the same seeds as a search that only drafts: their replies, and the comparison of
    the two, do not depend on how many repairs came in between.

    Temperature: `fixed` uses `temperature` for every sample; `ramp` starts greedy and heats up
    as a conversation is sampled more: a request for n samples of a conversation sampled m times
    before gets temperature × (1 − 1/(m + n)): 0 for one first sample, ½ for a first pair, → the
    configured temperature over many batches."""

    def __init__(self, backend: LLMBackend, *, temperature: float, max_tokens: int, max_concurrency: int,
                 seed: int | None, cache: ResponseCache | None = None, schedule: str = "fixed",
                 price: Mapping[str, float] | None = None) -> None:
        if schedule not in SCHEDULES:
            raise ValueError(f"temperature schedule must be one of {SCHEDULES}, not {schedule!r}")
        self.backend = backend
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.seed = seed
        self.cache = cache
        self.schedule = schedule
        self.price = price
        self.usage = Usage(cost_usd=0.0 if price is not None else None)
        self._identity = backend_identity(backend)
        self._slots = asyncio.Semaphore(max(1, max_concurrency))
        self._requests_made = 0
        self._stream_requests: Counter[str] = Counter()
        self._sampled: Counter[str] = Counter()
        self.on_paid: Callable[[Usage], None] | None = None  # sees the usage after each real request

    @property
    def model_name(self) -> str:
        return self.backend.model_name

    def temperature_for(self, messages: Sequence[Message], n: int) -> float:
        if self.schedule == "fixed":
            return self.temperature
        conversation = request_key("", messages, n=0, temperature=0, max_tokens=0, seed=None)
        before = self._sampled[conversation]
        self._sampled[conversation] += n
        return round(self.temperature * (1 - 1 / (before + n)), 4)

    async def sample(self, messages: Sequence[Message], n: int = 1, temperature: float | None = None,
                     stream: str | None = None) -> list[Completion]:
        """`n` replies to one conversation, at the scheduled temperature unless one is given;
        `stream` (one of SEED_STREAMS) draws the seed from that stream's own count."""
        if stream is None:
            k = self._requests_made
        else:
            k = SEED_STREAMS[stream] + self._stream_requests[stream]
            self._stream_requests[stream] += 1
        seed = None if self.seed is None else self.seed * 100_003 + k
        self._requests_made += 1
        chosen = self.temperature_for(messages, n) if temperature is None else temperature
        key = request_key(self._identity, messages, n=n, temperature=chosen, max_tokens=self.max_tokens, seed=seed)
        if self.cache is not None and (cached := self.cache.get(key)) is not None:
            self.usage.cache_hits += 1
            self._count_tokens(cached)
            return cached
        async with self._slots:
            completions = await self.backend.generate(messages, n=n, temperature=chosen, max_tokens=self.max_tokens,
                                                      seed=seed)
        # before the cache, the accounts or the search see them: every later step hashes or stores the text
        completions = [storable(c) for c in completions]
        # counted (and kept by on_paid) before it is cached: a job killed in between asks again and
        # counts both calls, rather than replay a reply from the cache that no count holds
        self._account(completions)
        if self.on_paid is not None:
            self.on_paid(self.usage)
        if self.cache is not None:
            self.cache.put(key, completions)  # before anyone uses the replies: paid for once
        return completions

    def _count_tokens(self, completions: Sequence[Completion]) -> tuple[int, int]:
        prompt = sum(c.prompt_tokens for c in completions)
        completion = sum(c.completion_tokens for c in completions)
        self.usage.prompt_tokens += prompt
        self.usage.completion_tokens += completion
        return prompt, completion

    def _account(self, completions: Sequence[Completion]) -> None:
        prompt, completion = self._count_tokens(completions)
        self.usage.calls += 1
        if self.price is not None and self.usage.cost_usd is not None:
            self.usage.cost_usd += (prompt * self.price["prompt"] + completion * self.price["completion"]) / 1e6

    async def aclose(self) -> None:
        await self.backend.aclose()
