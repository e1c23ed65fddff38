"""Completion tokens per second of the embedded model, batched decoding against one sequence at a time.

    python -m benchmarks.llm_throughput                 # n = 1, 2, 4, 8 samples; 8 concurrent requests
    python -m benchmarks.llm_throughput --max-tokens 128 --parallel 4 8

Prompts are seidr's own draft prompts for HumanEval/0-15 (Python). Each row draws the same
samples (same prompts, seeds, temperature and token limit) in several ways:
- `before`: llama-cpp-python's `create_chat_completion`, one sample after another, as seidr's
  LocalBackend did before batching;
- `exact 1`: seidr's engine decoding one sequence at a time (`--exact 1`);
- `exact P`: the default, up to P sequences per batch but no more than the size that rounds like
  one sequence alone (the engine measures it at start);
- `fast P`: up to P sequences per batch (model.exact_batches=false).
Tokens/s counts completion tokens over wall time, prompt evaluation included."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Awaitable, Callable, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seidr.data.humaneval import HumanEvalDataset  # noqa: E402
from seidr.llm.base import Completion, Message  # noqa: E402
from seidr.llm.local import LocalBackend  # noqa: E402
from seidr.llm.weights import default_gguf  # noqa: E402
from seidr.prompts import python as python_prompts  # noqa: E402
from tests.conftest import find_data_dir  # noqa: E402

Generate = Callable[[Sequence[Message], int, int], Awaitable[list[Completion]]]
TEMPERATURE = 0.7


def prompts(count: int) -> list[list[Message]]:
    data_dir = find_data_dir()
    if data_dir is None:
        sys.exit("no data: set DATA_PATH (see README)")
    dataset = HumanEvalDataset(data_dir / "humaneval" / "HumanEval.jsonl.gz")
    return [python_prompts.draft(dataset.load(f"HumanEval/{i}", seed=0)) for i in range(count)]


def previous_llama(threads: int, n_ctx: int = 4096):
    """The embedded model as seidr's LocalBackend loaded it before batching."""
    import llama_cpp

    return llama_cpp.Llama(model_path=str(default_gguf(Path("~/.cache/seidr/models").expanduser())),
                           n_ctx=n_ctx, n_threads=threads, verbose=False)


def old_way(n_ctx: int, threads: int) -> tuple[Generate, Callable[[], None]]:
    """seidr's LocalBackend before batching: create_chat_completion per sample, seeds seed+i."""
    llama = previous_llama(threads, n_ctx)

    lock = threading.Lock()  # one llama.cpp context: one generation at a time, as before

    def complete(messages: Sequence[Message], seed: int, max_tokens: int) -> dict:
        with lock:
            return llama.create_chat_completion(messages=[{"role": m.role, "content": m.content} for m in messages],
                                                temperature=TEMPERATURE, max_tokens=max_tokens, seed=seed)

    async def generate(messages: Sequence[Message], n: int, seed: int, max_tokens: int = 0) -> list[Completion]:
        replies = []
        for index in range(n):
            response = await asyncio.to_thread(complete, messages, seed + index, max_tokens)
            replies.append(Completion(text=response["choices"][0]["message"]["content"] or "",
                                      completion_tokens=response["usage"]["completion_tokens"]))
        return replies

    return generate, llama.close


async def measure(generate, requests: list[tuple[list[Message], int, int]], max_tokens: int) -> tuple[int, float]:
    """All requests at once (as the search loop makes them); returns completion tokens and seconds."""
    started = time.perf_counter()
    results = await asyncio.gather(*(generate(messages, n, seed, max_tokens) for messages, n, seed in requests))
    elapsed = time.perf_counter() - started
    return sum(c.completion_tokens for replies in results for c in replies), elapsed


def workloads(conversations: list[list[Message]]) -> list[tuple[str, list[tuple[list[Message], int, int]]]]:
    rows = [(f"n={n} samples of one prompt", [(conversations[0], n, 1)]) for n in (1, 2, 4, 8)]
    rows.append(("8 concurrent requests, n=1", [(conversations[i], 1, 1) for i in range(8)]))
    rows.append(("8 concurrent requests, n=2", [(conversations[i], 2, 1) for i in range(8, 16)]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--exact", type=int, nargs="*", default=[8], help="model.parallel of exact-batch engines")
    parser.add_argument("--fast", type=int, nargs="*", default=[16], help="model.parallel of engines without exact batches")
    parser.add_argument("--no-before", action="store_true", help="skip llama-cpp-python's one-at-a-time path")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    threads = os.cpu_count() or 1
    conversations = prompts(16)
    table = workloads(conversations)
    ways: list[tuple[str, Callable[[], tuple[Generate, Callable[[], None]]]]] = []
    if not args.no_before:
        ways.append(("before", lambda: old_way(4096, threads)))

    def engine(parallel: int, exact: bool = True):
        def make():
            backend = LocalBackend("qwen", n_ctx=4096, n_threads=threads, parallel=parallel, exact_batches=exact)
            print(f"engine parallel={parallel} exact={exact}: {backend.parallel} sequences at once")

            async def generate(messages, n, seed, max_tokens):
                return await backend.generate(messages, n=n, temperature=TEMPERATURE, max_tokens=max_tokens, seed=seed)
            return generate, lambda: asyncio.run(backend.aclose())
        return make

    ways += [(f"exact {p}", engine(p)) for p in args.exact]
    ways += [(f"fast {p}", engine(p, exact=False)) for p in args.fast]
    figures: dict[tuple[str, str], tuple[int, float]] = {}
    for label, make in ways:
        generate, close = make()
        asyncio.run(measure(generate, [(conversations[0], 1, 99)], 16))  # warm up: page the weights in
        for row, requests in table:
            figures[(label, row)] = asyncio.run(measure(generate, requests, args.max_tokens))
            tokens, seconds = figures[(label, row)]
            print(f"{label:>12}  {row:<28} {tokens:5d} tokens {seconds:7.1f} s {tokens / seconds:6.1f} tok/s",
                  flush=True)
        close()
    labels = [label for label, _ in ways]
    base = labels[0]  # before, unless skipped
    print(f"\ncompletion tokens/s, {threads} threads, max_tokens={args.max_tokens}, temperature={TEMPERATURE}"
          f" (speed-up over {base})")
    print("| workload | " + " | ".join(labels) + " |")
    print("|---" * (len(labels) + 1) + "|")
    for row, _ in table:
        cells = []
        for label in labels:
            tokens, seconds = figures[(label, row)]
            rate = tokens / seconds
            base_tokens, base_seconds = figures[(base, row)]
            cells.append(f"{rate:.1f}" + ("" if label == base else f" ({rate / (base_tokens / base_seconds):.1f}×)"))
        print(f"| {row} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
