"""The one interface every LLM backend implements."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
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


# UTF-16 surrogate code points: a JSON reply may carry one alone ("\ud800"), which no UTF-8 file,
# hash or pipe accepts
_SURROGATE = re.compile("[\ud800-\udfff]")
UNREADABLE = "\ufffd"  # what stands in for each such code point


def storable(completion: Completion) -> Completion:
    """The completion with every code point UTF-8 cannot hold replaced by U+FFFD, so any text a
    model sends can be cached, hashed, recorded and run; `prompts.extract.reply_issue` flags it."""
    text = _SURROGATE.sub(UNREADABLE, completion.text)
    reason = completion.finish_reason
    reason = None if reason is None else _SURROGATE.sub(UNREADABLE, reason)
    if text == completion.text and reason == completion.finish_reason:
        return completion
    return replace(completion, text=text, finish_reason=reason)


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
