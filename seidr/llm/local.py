"""The embedded model: llama.cpp in-process through llama-cpp-python. No server, no network."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Sequence

from seidr.errors import SeidrError
from seidr.llm.base import Completion, Message
from seidr.llm.weights import default_gguf


class LocalBackend:
    """A GGUF model run by llama.cpp. `path=None` uses the embedded Qwen2.5-Coder-0.5B-Instruct.

    Generations run one at a time in worker threads (the event loop stays free for program
    execution meanwhile); `n` samples are drawn one after another with consecutive seeds."""

    def __init__(self, name: str, path: str | None = None, cache_dir: str = "~/.cache/seidr/models",
                 n_ctx: int = 4096, n_threads: int | None = None) -> None:
        try:
            import llama_cpp
        except ImportError as error:  # a broken or missing build of the native library
            raise SeidrError(f"llama-cpp-python is not usable ({error}); run `pip install -e .`") from error
        model_path = Path(path).expanduser() if path else default_gguf(cache_dir)
        if not model_path.is_file():
            raise SeidrError(f"model.path {model_path} does not exist; point it at a GGUF file")
        self.model_name = name
        self.path = model_path
        self._llama = llama_cpp.Llama(
            model_path=str(model_path), n_ctx=n_ctx, n_threads=n_threads or os.cpu_count() or 1, verbose=False
        )
        # llama.cpp contexts are not thread-safe; a thread lock (not an asyncio one) keeps a
        # cancelled request's still-running thread from overlapping the next request
        self._lock = threading.Lock()

    async def generate(self, messages: Sequence[Message], *, n: int, temperature: float, max_tokens: int,
                       seed: int | None) -> list[Completion]:
        chat = [{"role": m.role, "content": m.content} for m in messages]
        completions = []
        for index in range(n):
            sample_seed = None if seed is None else seed + index
            completions.append(await asyncio.to_thread(self._complete, chat, temperature, max_tokens, sample_seed))
        return completions

    def _complete(self, chat: list[dict], temperature: float, max_tokens: int, seed: int | None) -> Completion:
        with self._lock:
            response = self._llama.create_chat_completion(
                messages=chat, temperature=temperature, max_tokens=max_tokens,
                seed=seed if seed is not None else -1,
            )
        choice = response["choices"][0]
        usage = response.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "",
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=usage.get("prompt_tokens", 0),
            completion_tokens=usage.get("completion_tokens", 0),
        )

    async def aclose(self) -> None:
        with self._lock:
            self._llama.close()
