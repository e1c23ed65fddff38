"""Batched decoding in the embedded model, with the real model (slow: runs llama.cpp).

Replies are kept short (max_tokens 24-48): what is checked is who gets which tokens, not quality."""

import asyncio
import math

import pytest

from seidr.errors import SeidrError
from seidr.llm.base import Message

pytestmark = pytest.mark.slow


def ask(task: str) -> list[Message]:
    return [Message("system", "You are a careful Python 3 programmer."),
            Message("user", f"Write a Python function that {task}. Answer with one ```python block.")]


TASKS = ["returns the square of a number", "reverses a string", "counts the vowels in a string",
         "sums a list of integers", "checks whether a number is prime"]


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    from seidr.llm.local import LocalBackend

    made = LocalBackend("qwen", n_ctx=1024, parallel=6, exact_batches=True)
    assert made.parallel >= 2, "batches of two round like one sequence alone on every machine measured"
    yield made
    asyncio.run(made.aclose())


@pytest.fixture(scope="module")
def fast(tmp_path_factory):
    from seidr.llm.local import LocalBackend

    made = LocalBackend("qwen", n_ctx=1024, parallel=12, exact_batches=False)
    yield made
    asyncio.run(made.aclose())


def test_a_requests_replies_do_not_depend_on_what_else_is_in_the_batch(backend):
    async def scenario():
        alone = await backend.generate(ask(TASKS[0]), n=3, temperature=0.8, max_tokens=40, seed=11)
        crowded = await asyncio.gather(
            backend.generate(ask(TASKS[1]), n=2, temperature=0.8, max_tokens=48, seed=3),
            backend.generate(ask(TASKS[0]), n=3, temperature=0.8, max_tokens=40, seed=11),
            backend.generate(ask(TASKS[2]), n=1, temperature=0.0, max_tokens=24, seed=5))
        return alone, crowded

    alone, (other, again, greedy) = asyncio.run(scenario())
    assert [r.text for r in again] == [r.text for r in alone]
    # the samples of one request are different draws (seed + i), not copies of one
    assert len({r.text for r in alone}) == 3
    assert len(other) == 2 and len(greedy) == 1 and all(r.completion_tokens > 0 for r in other + greedy)
    # the prompt was evaluated once for the three samples: counted on one reply
    assert alone[0].prompt_tokens > 0 and alone[1].prompt_tokens == alone[2].prompt_tokens == 0


def test_seeds_reproduce_and_differ(backend):
    async def draw(seed):
        return [r.text for r in await backend.generate(ask(TASKS[3]), n=2, temperature=1.0, max_tokens=32,
                                                       seed=seed)]

    first, second, other = asyncio.run(draw(21)), asyncio.run(draw(21)), asyncio.run(draw(22))
    assert first == second
    assert other != first
    # sample i of a request is the draw of seed + i: sample 1 of seed 21 is sample 0 of seed 22
    assert first[1] == other[0]


def test_more_samples_than_sequences_are_all_drawn(backend):
    replies = asyncio.run(backend.generate(ask(TASKS[4]), n=8, temperature=0.9, max_tokens=24, seed=1))
    assert len(replies) == 8 and all(r.completion_tokens > 0 for r in replies)
    assert {r.finish_reason for r in replies} <= {"stop", "length"}
    # eight samples on fewer sequences: the prompt is evaluated once per group admitted
    assert backend.parallel < 8
    assert sum(r.prompt_tokens > 0 for r in replies) == math.ceil(8 / backend.parallel)


def test_cancelling_a_request_frees_its_sequences_at_once_and_the_rest_carry_on(fast):
    backend, engine = fast, fast._engine

    async def scenario():
        long = asyncio.create_task(backend.generate(ask(TASKS[4]), n=4, temperature=0.9, max_tokens=600, seed=2))
        short = asyncio.create_task(backend.generate(ask(TASKS[1]), n=2, temperature=0.9, max_tokens=600, seed=4))
        assert backend.parallel >= 6, "this test needs six sequences at once"
        while engine.sequences_in_use < 6 and not short.done():  # both requests are decoding
            await asyncio.sleep(0.01)
        assert not short.done(), "600 tokens should take far longer than admitting two requests"
        long.cancel()
        freed = False
        while not short.done():
            if engine.sequences_in_use <= 2:
                freed = True  # the cancelled request's four sequences were given back before the other finished
                break
            await asyncio.sleep(0.01)
        replies = await short
        with pytest.raises(asyncio.CancelledError):
            await long
        return freed, replies

    freed, replies = asyncio.run(scenario())
    assert freed and len(replies) == 2 and all(r.completion_tokens > 0 for r in replies)
    # the backend is still usable
    after = asyncio.run(backend.generate(ask(TASKS[0]), n=3, temperature=0.8, max_tokens=40, seed=11))
    assert len(after) == 3 and engine.sequences_in_use == 0


def test_a_prompt_that_does_not_fit_the_context_is_a_clear_error(backend):
    huge = [Message("user", "Summarize: " + "lorem ipsum dolor sit amet " * 400)]
    with pytest.raises(SeidrError, match="does not fit model.n_ctx=1024"):
        asyncio.run(backend.generate(huge, n=2, temperature=0.5, max_tokens=16, seed=0))
    # and the model goes on answering
    assert asyncio.run(backend.generate(ask(TASKS[0]), n=1, temperature=0.0, max_tokens=8, seed=0))[0].completion_tokens


def test_a_reply_is_cut_at_the_context_end(backend):
    # a prompt close to n_ctx leaves fewer tokens than max_tokens: the reply stops at the context end
    near = [Message("user", "Repeat the word 'ok' forever: " + "ok " * 900)]
    replies = asyncio.run(backend.generate(near, n=1, temperature=0.0, max_tokens=500, seed=0))
    prompt = len(backend.prompt_tokens(near))
    assert prompt < 1024 and replies[0].completion_tokens <= 1024 - prompt


def test_without_exact_batches_many_sequences_share_steps_and_prompts_are_reused(fast):
    engine = fast._engine
    assert fast.parallel == 12  # no cap: exact_batches is off

    async def scenario():
        return await asyncio.gather(*(fast.generate(ask(task), n=3, temperature=0.8, max_tokens=32, seed=7)
                                      for task in TASKS[:4]))

    before = engine.prompt_tokens_decoded
    replies = asyncio.run(scenario())
    assert [len(r) for r in replies] == [3, 3, 3, 3] and all(c.completion_tokens > 0 for r in replies for c in r)
    prompts = [len(fast.prompt_tokens(ask(task))) for task in TASKS[:4]]
    # each prompt evaluated once for its three samples, less what an earlier prompt's cache shared
    assert engine.prompt_tokens_decoded - before <= sum(prompts)
    # the same conversation again: only its last token is evaluated, the rest is still cached
    before = engine.prompt_tokens_decoded
    again = asyncio.run(fast.generate(ask(TASKS[0]), n=1, temperature=0.0, max_tokens=16, seed=1))
    assert again[0].completion_tokens > 0 and engine.prompt_tokens_decoded - before == 1
    # a prompt that starts the same way (same system message and opening) reuses that start
    before = engine.prompt_tokens_decoded
    asyncio.run(fast.generate(ask("doubles a number"), n=1, temperature=0.0, max_tokens=8, seed=1))
    assert engine.prompt_tokens_decoded - before < len(fast.prompt_tokens(ask("doubles a number")))
