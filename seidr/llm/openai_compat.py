"""Any OpenAI-compatible chat server (OpenAI, vLLM, llama.cpp's server, LiteLLM, ...) through
the official `openai` client."""

from __future__ import annotations

from typing import Any, Sequence

import openai

from seidr.errors import SeidrError
from seidr.llm.base import Completion, Message
from seidr.llm.retry import with_retries

DEFAULT_URL = "https://api.openai.com/v1"


def _transient(error: BaseException) -> bool:
    if isinstance(error, (openai.APIConnectionError, openai.APITimeoutError, openai.RateLimitError)):
        return True
    return isinstance(error, openai.APIStatusError) and error.status_code >= 500


class OpenAIBackend:
    """`n` completions in one request where the server honours `n`; servers that return fewer
    (llama.cpp's Python server ignores `n`) are asked again until there are `n`."""

    def __init__(self, name: str, base_url: str | None = None, api_key: str | None = None, timeout_s: float = 120.0,
                 max_retries: int = 4, retry_wait_s: float = 1.0) -> None:
        if not api_key:
            raise SeidrError("the OpenAI backend needs an API key: set OPENAI_API_KEY or model.api_key=... "
                             "(a local server that checks no key takes any string, e.g. model.api_key=none)")
        self.model_name = name
        self.base_url = base_url or DEFAULT_URL
        self.attempts = max(1, max_retries + 1)
        self.retry_wait_s = retry_wait_s
        # the client's own retries are off: one policy, ours, for every backend
        self._client = openai.AsyncOpenAI(api_key=api_key, base_url=self.base_url, timeout=timeout_s, max_retries=0)

    async def generate(self, messages: Sequence[Message], *, n: int, temperature: float, max_tokens: int,
                       seed: int | None) -> list[Completion]:
        chat = [{"role": m.role, "content": m.content} for m in messages]
        completions: list[Completion] = []
        while len(completions) < n:
            wanted = n - len(completions)
            extra: dict[str, Any] = {"seed": seed + len(completions)} if seed is not None else {}
            response = await self._request(chat, wanted, temperature, max_tokens, extra)
            usage = response.usage
            for index, choice in enumerate(response.choices[:wanted]):
                completions.append(Completion(
                    text=choice.message.content or "", finish_reason=choice.finish_reason,
                    prompt_tokens=(usage.prompt_tokens or 0) if usage and index == 0 else 0,
                    completion_tokens=_share(usage.completion_tokens if usage else 0, index, len(response.choices)),
                ))
            if not response.choices:
                raise SeidrError(f"{self.base_url} returned no choices for model {self.model_name}")
        return completions

    async def _request(self, chat: list[dict[str, str]], n: int, temperature: float, max_tokens: int,
                       extra: dict[str, Any]) -> Any:
        async def call() -> Any:
            return await self._client.chat.completions.create(
                model=self.model_name, messages=chat, n=n, temperature=temperature, max_tokens=max_tokens, **extra)

        try:
            return await with_retries(call, transient=_transient, attempts=self.attempts, wait_s=self.retry_wait_s)
        except openai.AuthenticationError as error:
            raise SeidrError(f"{self.base_url} rejected the API key (401); check OPENAI_API_KEY or model.api_key") \
                from error
        except openai.NotFoundError as error:
            raise SeidrError(f"{self.base_url} does not know model {self.model_name!r} (404); "
                             "check model.name (and model.base_url)") from error
        except (openai.APIConnectionError, openai.APITimeoutError) as error:
            raise SeidrError(f"cannot reach the OpenAI-compatible server at {self.base_url} after {self.attempts} "
                             f"tries ({error}); check model.base_url and that the server is up") from error
        except openai.APIStatusError as error:
            raise SeidrError(f"{self.base_url}/chat/completions answered HTTP {error.status_code} after "
                             f"{self.attempts} tries: {_short(error)}") from error

    async def aclose(self) -> None:
        await self._client.close()


def _share(total: int | None, index: int, count: int) -> int:
    """Completion tokens of one choice when the server reports only the request's total."""
    total = total or 0
    return total // count + (1 if index < total % count else 0) if count else 0


def _short(error: openai.APIStatusError) -> str:
    return str(getattr(error, "message", error))[:300]
