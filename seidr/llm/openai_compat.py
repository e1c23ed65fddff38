"""Any OpenAI-compatible chat server (OpenAI, vLLM, llama.cpp's server, LiteLLM, ...) through
the official `openai` client."""

from __future__ import annotations

import json
from typing import Any, Sequence

import openai

from seidr.errors import SeidrError
from seidr.llm.base import Completion, Message
from seidr.llm.retry import BadReply, preview, with_retries

DEFAULT_URL = "https://api.openai.com/v1"


def _transient(error: BaseException) -> bool:
    if isinstance(error, (openai.APIConnectionError, openai.APITimeoutError, openai.RateLimitError)):
        return True
    return isinstance(error, openai.APIStatusError) and error.status_code >= 500


class OpenAIBackend:
    """`n` completions in one request where the server honours `n`; servers that return fewer
    (llama.cpp's Python server ignores `n`) are asked again until there are `n`."""

    def __init__(self, name: str, base_url: str | None = None, api_key: str | None = None, timeout_s: float = 120.0,
                 max_retries: int = 2, retry_wait_s: float = 1.0) -> None:
        if not api_key:
            raise SeidrError("the OpenAI backend needs an API key: set OPENAI_API_KEY or model.api_key=... "
                             "(a local server that checks no key takes any string, e.g. model.api_key=none)")
        self.model_name = name
        self.base_url = base_url or DEFAULT_URL
        self.endpoint = f"{self.base_url.rstrip('/')}/chat/completions"
        self.timeout_s = timeout_s
        self.attempts = max(1, max_retries + 1)
        self.retry_wait_s = retry_wait_s
        # the client's own retries are off: one policy, ours, for every backend; its timeout
        # (per read) is a backstop, ours (with_retries) bounds the whole request
        self._client = openai.AsyncOpenAI(api_key=api_key, base_url=self.base_url, timeout=timeout_s, max_retries=0)

    async def generate(self, messages: Sequence[Message], *, n: int, temperature: float, max_tokens: int,
                       seed: int | None) -> list[Completion]:
        chat = [{"role": m.role, "content": m.content} for m in messages]
        completions: list[Completion] = []
        while len(completions) < n:
            wanted = n - len(completions)
            extra: dict[str, Any] = {"seed": seed + len(completions)} if seed is not None else {}
            reply = await self._request(chat, wanted, temperature, max_tokens, extra)
            choices, usage = reply["choices"], reply.get("usage") or {}
            for index, choice in enumerate(choices[:wanted]):
                completions.append(Completion(
                    text=_content(choice["message"].get("content")),
                    finish_reason=_text(choice.get("finish_reason")) or None,
                    prompt_tokens=_count(usage.get("prompt_tokens")) if index == 0 else 0,
                    completion_tokens=_share(_count(usage.get("completion_tokens")), index, len(choices)),
                ))
        return completions

    async def _request(self, chat: list[dict[str, str]], n: int, temperature: float, max_tokens: int,
                       extra: dict[str, Any]) -> dict[str, Any]:
        async def call() -> dict[str, Any]:
            # the raw body, so a 200 that is not a chat completion is caught here and retried
            raw = await self._client.chat.completions.with_raw_response.create(
                model=self.model_name, messages=chat, n=n, temperature=temperature, max_tokens=max_tokens, **extra)
            return _checked(raw.text)

        return await with_retries(call, transient=_transient, explain=self._explain, where=self.endpoint,
                                  attempts=self.attempts, wait_s=self.retry_wait_s, timeout_s=self.timeout_s)

    def _explain(self, error: BaseException, tries: str) -> str | None:
        if isinstance(error, openai.AuthenticationError):
            return f"{self.base_url} rejected the API key (401); check OPENAI_API_KEY or model.api_key"
        if isinstance(error, openai.NotFoundError):
            return (f"{self.base_url} does not know model {self.model_name!r} (404); "
                    "check model.name (and model.base_url)")
        if isinstance(error, (TimeoutError, openai.APITimeoutError)):
            return (f"{self.endpoint} gave no whole answer within model.timeout_s={self.timeout_s:g} s, {tries}; "
                    "check the server, or raise model.timeout_s for a slow model")
        if isinstance(error, openai.APIConnectionError) and _undecodable(error):
            # the client reports a body it cannot decode as a connection error: say what it was
            return f"{self.endpoint} answered with a body that is not what its Content-Encoding says {tries}"
        if isinstance(error, openai.APIConnectionError):
            return (f"cannot reach the OpenAI-compatible server at {self.base_url} {tries} ({error}); "
                    "check model.base_url and that the server is up")
        if isinstance(error, openai.APIStatusError):
            return f"{self.endpoint} answered HTTP {error.status_code} {tries}: {_short(error)}"
        if isinstance(error, BadReply):
            return f"{self.endpoint} {error.what} {tries}: {preview(error.body)}"
        return None

    async def aclose(self) -> None:
        await self._client.close()


def _checked(body: str) -> dict[str, Any]:
    """The chat completion in a 200's body, or BadReply saying what is wrong with it."""
    try:
        reply = json.loads(body)
    except ValueError:
        raise BadReply("answered 200 with a body that is not JSON", body) from None
    choices = reply.get("choices") if isinstance(reply, dict) else None
    if not isinstance(choices, list) or not choices:
        raise BadReply("answered 200 with no choices", body)
    if not all(isinstance(c, dict) and isinstance(c.get("message"), dict) for c in choices):
        raise BadReply("answered 200 with a choice that has no message", body)
    if not isinstance(reply.get("usage") or {}, dict):
        raise BadReply("answered 200 with a malformed usage", body)
    return reply


def _undecodable(error: BaseException) -> bool:
    """Whether the error was caused by a body that its Content-Encoding does not describe. By the
    cause's class name: the openai client may carry its own copy of httpx (httpx2), whose
    DecodingError is not httpx's."""
    cause = error.__cause__
    return cause is not None and any(kind.__name__ == "DecodingError" for kind in type(cause).__mro__)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _content(value: Any) -> str:
    """A message's text: a string, or content sent as a list of parts (text parts joined, in order;
    a part may be a string or {"type": "text", "text": ...}); anything else is no text."""
    if not isinstance(value, list):
        return _text(value)
    texts = (part if isinstance(part, str) else part.get("text") if isinstance(part, dict)
             and part.get("type", "text") == "text" else None for part in value)
    return "".join(text for text in texts if isinstance(text, str))


def _count(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _share(total: int, index: int, count: int) -> int:
    """Completion tokens of one choice when the server reports only the request's total."""
    return total // count + (1 if index < total % count else 0) if count else 0


def _short(error: openai.APIStatusError) -> str:
    return _one_line(getattr(error, "message", error))[:300]


def _one_line(value: object) -> str:
    return " ".join(str(value).split())
