"""A scripted chat model for testing search logic (never a product feature): replies come from a
function of the conversation, and every request is recorded."""

from __future__ import annotations

import asyncio
from typing import Callable, Sequence

from seidr.llm.base import Completion, Message

Reply = Callable[[str, list[Message], int], str]  # (step, messages, sample index) -> reply text


def step_of(messages: Sequence[Message]) -> str:
    """Which SEIDR step a conversation is: draft, explain or repair (read off seidr's prompts)."""
    text = messages[-1].content
    if "What is wrong, according to a review" in text or "Running this attempt ends in an error" in text:
        return "repair"
    if "This attempt fails a test" in text:
        return "explain"
    return "draft"


class ScriptedBackend:
    model_name = "scripted"

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.requests: list[tuple[str, list[Message], int, float]] = []
        self.seeds: list[int | None] = []  # of each request, in the order asked

    async def generate(self, messages: Sequence[Message], *, n: int, temperature: float, max_tokens: int,
                       seed: int | None) -> list[Completion]:
        step = step_of(messages)
        self.requests.append((step, list(messages), n, temperature))
        self.seeds.append(seed)
        return [Completion(self.reply(step, list(messages), i), "stop", 10, 5) for i in range(n)]

    async def aclose(self) -> None:
        pass


class Gate:
    """One request held by a GatedBackend until the test opens it."""

    def __init__(self, number: int, step: str, n: int) -> None:
        self.number = number  # the order it was asked in
        self.step = step
        self.n = n
        self.opened = asyncio.Event()
        self.answered = False
        self.cancelled = False  # the caller stopped waiting for it (the search no longer wanted it)


class GatedBackend(ScriptedBackend):
    """A scripted model whose replies finish when the test says: every request waits at its own
    gate, so a test chooses the order in which concurrent requests finish, as a real server's
    replies do, instead of always the order they were asked in."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply)
        self.gates: list[Gate] = []
        self.peak_waiting = 0

    @property
    def waiting(self) -> list[Gate]:
        """Requests asked for and not yet answered or cancelled, in the order asked."""
        return [g for g in self.gates if not g.answered and not g.cancelled]

    async def generate(self, messages: Sequence[Message], *, n: int, temperature: float, max_tokens: int,
                       seed: int | None) -> list[Completion]:
        gate = Gate(len(self.gates), step_of(messages), n)
        self.gates.append(gate)
        self.peak_waiting = max(self.peak_waiting, len(self.waiting))
        try:
            await gate.opened.wait()
        except asyncio.CancelledError:
            gate.cancelled = True
            raise
        gate.answered = True
        return await super().generate(messages, n=n, temperature=temperature, max_tokens=max_tokens, seed=seed)


async def until(condition: Callable[[], bool], what: str, turns: int = 10_000) -> None:
    """Let the event loop run until `condition` holds; fail after a generous number of turns
    (everything here runs in one event loop with no real I/O, so a few turns suffice)."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never happened: {what}")
