"""A scripted chat model for testing search logic (never a product feature): replies come from a
function of the conversation, and every request is recorded."""

from __future__ import annotations

from typing import Callable, Sequence

from seidr.llm.base import Completion, Message

Reply = Callable[[str, list[Message], int], str]  # (step, messages, sample index) -> reply text


def step_of(messages: Sequence[Message]) -> str:
    """Which SEIDR step a conversation is: draft, explain or repair (read off seidr's prompts)."""
    text = messages[-1].content
    if "What is wrong, according to a review" in text:
        return "repair"
    if "This attempt fails a test" in text:
        return "explain"
    return "draft"


class ScriptedBackend:
    model_name = "scripted"

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.requests: list[tuple[str, list[Message], int, float]] = []

    async def generate(self, messages: Sequence[Message], *, n: int, temperature: float, max_tokens: int,
                       seed: int | None) -> list[Completion]:
        step = step_of(messages)
        self.requests.append((step, list(messages), n, temperature))
        return [Completion(self.reply(step, list(messages), i), "stop", 10, 5) for i in range(n)]

    async def aclose(self) -> None:
        pass
