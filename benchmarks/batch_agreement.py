"""How often batched decoding changes the embedded model's greedy replies, on HumanEval prompts.

    python -m benchmarks.batch_agreement               # HumanEval/0-39 draft prompts, max_tokens 768
    python -m benchmarks.batch_agreement --problems 16

Each prompt gets one greedy reply five ways: llama-cpp-python's `create_chat_completion`, one
prompt after another (seidr's LocalBackend before batching), as it ran (reusing the previous
prompt's cache) and with its cache reset before each prompt; seidr's engine with one prompt at a
time; with every prompt in flight at once and exact batches (the default); and the same without
exact batches (`model.exact_batches=false`, parallel 16). Prints how many replies are identical
to the first three."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.llm_throughput import previous_llama, prompts  # noqa: E402
from seidr.llm.local import LocalBackend  # noqa: E402


def before(conversations, max_tokens: int, threads: int, *, reset: bool) -> list[str]:
    """llama-cpp-python reuses the cache of the previous call for a prompt that starts the same way
    (so a reply depended on the prompt before it); `reset` starts every prompt from an empty cache."""
    llama = previous_llama(threads)
    replies = []
    try:
        for messages in conversations:
            if reset:
                llama.reset()
            replies.append(llama.create_chat_completion(
                messages=[{"role": m.role, "content": m.content} for m in messages], temperature=0.0,
                max_tokens=max_tokens, seed=1)["choices"][0]["message"]["content"] or "")
        return replies
    finally:
        llama.close()


def engine(conversations, max_tokens: int, threads: int, *, parallel: int, exact: bool, together: bool) -> list[str]:
    async def run() -> list[str]:
        backend = LocalBackend("qwen", n_ctx=4096, n_threads=threads, parallel=parallel, exact_batches=exact)
        try:
            def ask(messages):
                return backend.generate(messages, n=1, temperature=0.0, max_tokens=max_tokens, seed=1)
            if together:
                replies = await asyncio.gather(*(ask(messages) for messages in conversations))
            else:
                replies = [await ask(messages) for messages in conversations]
            return [reply[0].text for reply in replies]
        finally:
            await backend.aclose()
    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=40, help="HumanEval/0 .. N-1")
    parser.add_argument("--max-tokens", type=int, default=768)
    args = parser.parse_args()
    threads = os.cpu_count() or 1
    conversations = prompts(args.problems)
    ways = {
        "llama-cpp-python, one at a time": before(conversations, args.max_tokens, threads, reset=False),
        "llama-cpp-python, one at a time, cache reset": before(conversations, args.max_tokens, threads, reset=True),
        "engine, one at a time": engine(conversations, args.max_tokens, threads, parallel=1, exact=True,
                                        together=False),
        "engine, all in flight, exact batches": engine(conversations, args.max_tokens, threads, parallel=8,
                                                       exact=True, together=True),
        "engine, all in flight, parallel 16, not exact": engine(conversations, args.max_tokens, threads,
                                                                parallel=16, exact=False, together=True),
    }
    names = list(ways)
    print(f"greedy replies to HumanEval/0-{args.problems - 1} draft prompts, max_tokens {args.max_tokens}: "
          "identical to ...")
    print("| way | " + " | ".join(names[:3]) + " |")
    print("|---|---|---|---|")
    for name in names:
        same = [sum(a == b for a, b in zip(ways[name], ways[other])) for other in names[:3]]
        print(f"| {name} | " + " | ".join(f"{n}/{args.problems}" for n in same) + " |")


if __name__ == "__main__":
    main()
