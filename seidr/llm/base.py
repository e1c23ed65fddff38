"""The one interface every LLM backend implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, Sequence

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class Completion:
    """One reply. Token counts are those the backend reported for the request that produced it;
    when one request returns several completions, the prompt tokens are counted on the first only."""

    text: str
    finish_reason: str | None = None  # "stop", "length", ... as the backend says
    prompt_tokens: int = 0
    completion_tokens: int = 0


class LLMBackend(Protocol):
    """A chat model. `generate` returns exactly `n` completions for one conversation.

    Backends raise `seidr.errors.SeidrError` for problems the user must fix (missing key,
    unreachable server, unknown model), naming the setting or URL involved.
    """

    model_name: str

    async def generate(
        self,
        messages: Sequence[Message],
        *,
        n: int,
        temperature: float,
        max_tokens: int,
        seed: int | None,
    ) -> list[Completion]: ...

    async def aclose(self) -> None: ...
