"""The embedded model: llama.cpp in-process through llama-cpp-python. No server, no network."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Sequence

from seidr.errors import SeidrError
from seidr.llm.base import Completion, Message
from seidr.llm.weights import DEFAULT_MODEL, embedded_gguf


class LocalBackend:
    """A GGUF model run by llama.cpp. `path=None` uses the embedded model `embedded` (a key of
    `seidr.llm.weights.MODELS`; by default Qwen2.5-Coder-0.5B-Instruct).

    Decoding is batched (`seidr.llm.llama_engine`): the `n` samples of a request and every other
    request in flight share each decode step, up to `parallel` sequences; `parallel=1` decodes one
    sequence at a time. Sample i of a request is drawn with seed `seed + i`. With `exact_batches`
    (the default) batches stay within the size whose rounding matches a sequence decoded alone, so
    a reply never depends on what else was in flight."""

    def __init__(self, name: str, path: str | None = None, cache_dir: str = "~/.cache/seidr/models",
                 n_ctx: int = 4096, n_threads: int | None = None, parallel: int = 8,
                 exact_batches: bool = True, embedded: str = DEFAULT_MODEL) -> None:
        try:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError as error:  # a broken or missing build of the native library
            raise SeidrError(f"llama-cpp-python is not usable ({error}); run `pip install -e .`") from error
        from seidr.llm.llama_engine import BatchedEngine

        model_path = Path(path).expanduser() if path else embedded_gguf(embedded, cache_dir)
        if not model_path.is_file():
            raise SeidrError(f"model.path {model_path} does not exist; point it at a GGUF file")
        if parallel < 1:
            raise SeidrError(f"model.parallel must be at least 1, not {parallel}")
        self.model_name = name
        self.path = model_path
        self._engine = BatchedEngine(str(model_path), n_ctx=n_ctx, parallel=parallel,
                                     n_threads=n_threads or os.cpu_count() or 1, exact=exact_batches)
        template = self._engine.metadata("tokenizer.chat_template")
        if template is None:
            self._engine.close()
            raise SeidrError(f"{model_path} has no chat template (tokenizer.chat_template); seidr needs a chat model")
        self._format = Jinja2ChatFormatter(template=template, eos_token=self._engine.special_text("eos"),
                                           bos_token=self._engine.special_text("bos"))

    @property
    def parallel(self) -> int:
        """Sequences decoded at once (model.parallel, capped by exact_batches)."""
        return self._engine.parallel

    def prompt_tokens(self, messages: Sequence[Message]) -> list[int]:
        """The conversation rendered by the model's own chat template, as tokens."""
        chat = [{"role": m.role, "content": m.content} for m in messages]
        return self._engine.tokenize(self._format(messages=chat).prompt)

    async def generate(self, messages: Sequence[Message], *, n: int, temperature: float, max_tokens: int,
                       seed: int | None) -> list[Completion]:
        prompt = self.prompt_tokens(messages)
        seeds = [None if seed is None else seed + index for index in range(n)]
        future = self._engine.submit(prompt, seeds=seeds, temperature=temperature, max_tokens=max_tokens)
        # cancelling the awaiting task cancels the future: the engine frees its sequences at its next step
        return await asyncio.wrap_future(future)

    async def aclose(self) -> None:
        await asyncio.to_thread(self._engine.close)
