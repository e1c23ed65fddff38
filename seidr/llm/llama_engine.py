"""Continuous batched decoding on llama.cpp: every sequence in flight advances by one token per
decode call, so the weights are read once per step for all of them instead of once per sequence.

One thread owns the llama.cpp context (contexts are not thread-safe). Requests reach it through a
queue and leave through futures. The `n` samples of a request share their prompt: it is
evaluated once, on the first sample's sequence, and its cache is copied to the others.

Replies depend on the seed and the prompt only, never on what else is in the batch:
- each sample has its own seeded sampler chain;
- a prompt is evaluated in decode calls of its own, in the same chunks however busy the engine is;
- each sequence has a cache of its own, so its attention never spans another's cells;
- llama.cpp's CPU kernels compute a row's logits the same way for any batch up to some size and
  differently above it (on the machine this was written on: repacked weights are multiplied
  four rows at a time from 4 rows up, other kernels change at 8). The engine measures that size
  when it starts (`exact_rows`, 3 there) and never decodes more sequences at once: a batched
  reply is the reply the same sequence gets decoded alone, and the one llama-cpp-python's own
  generation gives (weights stay repacked as it loads them, so prompts are evaluated alike)."""

from __future__ import annotations

import concurrent.futures
import ctypes
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from seidr.errors import SeidrError
from seidr.llm.base import Completion

log = logging.getLogger(__name__)
llama_log = logging.getLogger("seidr.llm.llama_cpp")
# ggml's log levels as this build's ggml.h numbers them (NONE, DEBUG, INFO, WARN, ERROR, CONT: a
# continued line); llama-cpp-python's own callback still uses an older numbering, one level too
# high, which is why the loader's notes reached the console as warnings
_GGML_LEVELS = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}
# What llama.cpp says of Qwen2.5-Coder's GGUF on every load, as a warning, though nothing is
# wrong: its vocabulary marks `</s>` as an ordinary token, and llama.cpp fixes that itself.
_HARMLESS = ("was not control-type; this is probably a bug in the model",)


def _route_llama_log(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
    """llama.cpp's log into Python's: into main.log, and on the console only from warnings up,
    with the loader's harmless notices kept to the debug level."""
    message = text.decode("utf-8", errors="replace").rstrip()
    if not message:
        return
    severity = _GGML_LEVELS.get(level, logging.DEBUG)  # a continued line: debug
    if severity == logging.INFO or any(marker in message for marker in _HARMLESS):
        severity = logging.DEBUG  # the loader's progress notes: main.log at debug level only
    llama_log.log(severity, "%s", message)


def route_llama_log(llama_cpp: Any) -> None:
    """Send llama.cpp's log through `_route_llama_log` (llama-cpp-python's own callback prints
    error-level lines straight to stderr). The ctypes callback is kept on the module's function so
    it outlives every engine."""
    callback = getattr(route_llama_log, "_callback", None)
    if callback is None:
        callback = llama_cpp.llama_log_callback(_route_llama_log)
        route_llama_log._callback = callback  # type: ignore[attr-defined]
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))

# sampling as llama-cpp-python's create_chat_completion does it by default, so the embedded model
# keeps the character it had before batching (top-k 40, top-p 0.95, min-p 0.05)
TOP_K, TOP_P, MIN_P = 40, 0.95, 0.05
RANDOM_SEED = 0xFFFFFFFF  # llama.cpp's LLAMA_DEFAULT_SEED: draw a seed at random


@dataclass
class _Request:
    prompt: list[int]
    seeds: list[int | None]
    temperature: float
    max_tokens: int
    future: concurrent.futures.Future
    replies: list[Completion | None] = field(default_factory=list)
    waiting: deque[int] = field(default_factory=deque)  # sample indices not yet given a sequence

    @property
    def cancelled(self) -> bool:
        return self.future.cancelled()


@dataclass
class _Sample:
    request: _Request
    index: int
    seq: int
    sampler: Any
    pos: int
    counts_prompt: bool  # the first sample of its group: the prompt evaluation is counted on its reply
    tokens: list[int] = field(default_factory=list)
    logit_row: int = -1  # row of the last decode call whose logits this sample draws its next token from


def _common_start(first: list[int], second: list[int]) -> int:
    """How many tokens the two lists share from their start."""
    count = 0
    for a, b in zip(first, second):
        if a != b:
            break
        count += 1
    return count


class BatchedEngine:
    """Owns one llama.cpp model and context and decodes up to `parallel` sequences at once.

    `n_ctx` is the context of one sequence (prompt plus reply); the cache holds `parallel` of them.
    `exact=False` lets batches grow past the size that rounds like one sequence decoded alone:
    more tokens per second with many sequences in flight, but a reply may then change with what
    else was in the batch."""

    def __init__(self, path: str, *, n_ctx: int, parallel: int, n_threads: int, exact: bool = True,
                 n_batch: int = 512) -> None:
        import llama_cpp

        self._ll = llama_cpp
        self.n_ctx = n_ctx
        self.n_batch = n_batch
        # llama-cpp-python prints llama.cpp's log unless its logger is above INFO; Llama(verbose=False)
        # sets the same level
        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
        route_llama_log(llama_cpp)
        llama_cpp.llama_backend_init()
        model_params = llama_cpp.llama_model_default_params()
        self._model = llama_cpp.llama_model_load_from_file(path.encode(), model_params)
        if not self._model:
            raise SeidrError(f"llama.cpp could not load {path}; is it a GGUF file of a supported model?")
        requested = max(1, parallel)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx * requested
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.n_seq_max = requested
        params.n_threads = n_threads
        params.n_threads_batch = n_threads
        # a cache of its own for each sequence: a row's attention never sees another sequence's cells,
        # so it is computed as it would be alone (one shared cache changes the rounding)
        params.kv_unified = False
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED  # as llama-cpp-python's Llama
        params.no_perf = True
        self._ctx = llama_cpp.llama_init_from_model(self._model, params)
        if not self._ctx:
            llama_cpp.llama_model_free(self._model)
            raise SeidrError(f"llama.cpp could not make a context of {params.n_ctx} tokens for {path}")
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self.vocab = llama_cpp.llama_model_get_vocab(self._model)
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self.exact = exact
        self._kept: dict[int, list[int]] = {}  # tokens whose cache a free sequence still holds
        self._requested = requested
        self.exact_rows: int | None = None
        self.parallel = requested
        self.split_pairs = False
        self._inbox: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._closed = False
        self._failure: BaseException | None = None
        # written by the decode thread; read for tests and logs
        self.sequences_in_use = 0
        self.prompt_tokens_decoded = 0  # prompt tokens evaluated (what prompt sharing and reuse save)
        # every decode call, the probe's included, is made on this one thread: llama.cpp's OpenMP
        # build keeps a team of threads per calling thread, and two teams slow each step by a third
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="llama-decode", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            self.close()
            raise SeidrError(f"the embedded model could not start decoding: {self._failure}")
        if self.parallel < requested:
            log.info("llama.cpp rounds batches of more than %d sequences differently on this machine: decoding "
                     "at most %d at once (model.parallel=%d)", self.exact_rows, self.parallel, requested)

    def _probe_exact_rows(self, limit: int) -> int:
        """The largest batch (up to `limit`) in which a sequence gets the logits it gets decoded alone:
        batches of 2, 3, ... distinct short prompts, each evaluated on its own as the engine does,
        until the first row of one differs (a size that rounds differently did so on every try)."""
        prompts = [self.tokenize(f"def f{index}(x):\n    return x +") for index in range(limit)]

        def next_logits(rows: int) -> np.ndarray:
            self._ll.llama_memory_clear(self._memory, True)
            self._evaluate_apart(prompts[:rows])
            self._decode([(prompts[seq][-1], len(prompts[seq]), seq, True) for seq in range(rows)])
            return self._logits(0)

        try:
            alone = next_logits(1)
            for rows in range(2, limit + 1):
                if not np.array_equal(next_logits(rows), alone):
                    return rows - 1
            return limit
        finally:
            self._ll.llama_memory_clear(self._memory, True)

    def _evaluate_apart(self, prompts: list[list[int]]) -> None:
        """Prompt k on sequence k, each in a decode call of its own (for the start-up measurements)."""
        for seq, prompt in enumerate(prompts):
            self._decode([(token, pos, seq, False) for pos, token in enumerate(prompt)])

    def _logits(self, row: int) -> np.ndarray:
        count = self._ll.llama_vocab_n_tokens(self.vocab)
        return np.ctypeslib.as_array(self._ll.llama_get_logits_ith(self._ctx, row), shape=(count,)).copy()

    def _decode(self, rows: list[tuple[int, int, int, bool]]) -> None:
        """One llama_decode call of (token, position, sequence, wants logits) rows."""
        batch = self._batch
        for index, (token, pos, seq, logits) in enumerate(rows):
            batch.token[index] = token
            batch.pos[index] = pos
            batch.n_seq_id[index] = 1
            batch.seq_id[index][0] = seq
            batch.logits[index] = logits
        batch.n_tokens = len(rows)
        status = self._ll.llama_decode(self._ctx, batch)
        if status != 0:
            raise RuntimeError(f"llama_decode returned {status} for a batch of {len(rows)} tokens")

    # --- called from any thread -------------------------------------------------------------

    def metadata(self, key: str) -> str | None:
        size = self._ll.llama_model_meta_val_str(self._model, key.encode(), None, 0)
        if size < 0:
            return None
        buffer = ctypes.create_string_buffer(size + 1)
        self._ll.llama_model_meta_val_str(self._model, key.encode(), buffer, size + 1)
        return buffer.value.decode("utf-8", errors="replace")

    def special_text(self, which: str) -> str:
        """The text of the vocabulary's "bos" or "eos" token ("" if it has none)."""
        token = {"bos": self._ll.llama_vocab_bos, "eos": self._ll.llama_vocab_eos}[which](self.vocab)
        return self.token_text(token)

    def token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self._ll.llama_vocab_get_text(self.vocab, token).decode("utf-8", errors="replace")

    def tokenize(self, text: str) -> list[int]:
        """Tokens of a rendered chat prompt (special tokens such as <|im_start|> parsed as such)."""
        data = text.encode("utf-8")
        capacity = len(data) + 8
        tokens = (self._ll.llama_token * capacity)()
        count = self._ll.llama_tokenize(self.vocab, data, len(data), tokens, capacity, True, True)
        if count < 0:  # cannot happen with one token per byte at most, but never read past the buffer
            raise SeidrError(f"llama.cpp could not tokenize a prompt of {len(data)} bytes")
        return list(tokens[:count])

    def detokenize(self, tokens: list[int]) -> str:
        buffer = ctypes.create_string_buffer(64)
        pieces = []
        for token in tokens:
            size = self._ll.llama_token_to_piece(self.vocab, token, buffer, len(buffer), 0, False)
            if size > len(buffer):  # a piece longer than the buffer: grow and ask again
                buffer = ctypes.create_string_buffer(size)
                size = self._ll.llama_token_to_piece(self.vocab, token, buffer, len(buffer), 0, False)
            pieces.append(buffer.raw[:max(size, 0)])
        return b"".join(pieces).decode("utf-8", errors="ignore")

    def submit(self, prompt: list[int], *, seeds: list[int | None], temperature: float,
               max_tokens: int) -> concurrent.futures.Future:
        """Queue `len(seeds)` samples of one prompt; the future gives their replies in seed order.
        Cancelling the future frees its sequences at the next step."""
        if self._failure is not None:
            raise SeidrError(f"the embedded model stopped working: {self._failure}")
        if self._closed:
            raise SeidrError("the embedded model is closed")
        if len(prompt) >= self.n_ctx:
            raise SeidrError(f"a prompt of {len(prompt)} tokens does not fit model.n_ctx={self.n_ctx} "
                             "(the context of one reply): raise model.n_ctx or shorten the prompt "
                             "(fewer search.prompt_examples)")
        request = _Request(prompt=prompt, seeds=list(seeds), temperature=temperature,
                           max_tokens=max(1, min(max_tokens, self.n_ctx - len(prompt))),
                           future=concurrent.futures.Future(), replies=[None] * len(seeds),
                           waiting=deque(range(len(seeds))))
        if not seeds:
            request.future.set_result([])
            return request.future
        self._inbox.put(request)
        return request.future

    def close(self) -> None:
        """Finish the decode thread (pending requests are cancelled) and free the native objects."""
        if self._closed:
            return
        self._closed = True
        self._inbox.put(None)
        self._thread.join()
        self._ll.llama_batch_free(self._batch)
        self._ll.llama_free(self._ctx)
        self._ll.llama_model_free(self._model)

    # --- the decode thread --------------------------------------------------------------------

    def _run(self) -> None:
        pending: deque[_Request] = deque()
        active: list[_Sample] = []
        try:
            if self.exact:
                self.exact_rows = self._probe_exact_rows(self._requested)
                self.parallel = min(self._requested, self.exact_rows)
            self.split_pairs = self.parallel >= 2 and self._pairs_cost_more_than_two_singles()
        except BaseException as error:
            self._failure = error
            return
        finally:
            self._ready.set()
        free = list(range(self.parallel - 1, -1, -1))
        try:
            while True:
                # wait for work when idle; otherwise take whatever arrived and keep decoding
                stopping = False
                while True:
                    try:
                        item = self._inbox.get(block=not (active or pending))
                    except queue.Empty:
                        break
                    if item is None:
                        stopping = True
                        break
                    pending.append(item)
                if stopping:
                    for sample in active:
                        self._release(sample, free)
                        sample.request.future.cancel()
                    for request in pending:
                        request.future.cancel()
                    return
                # cancelled requests give back their sequences at once
                for sample in [s for s in active if s.request.cancelled]:
                    active.remove(sample)
                    self._release(sample, free)
                pending = deque(r for r in pending if not r.cancelled)
                if pending and free:
                    active.extend(self._admit(pending, free))
                self.sequences_in_use = self.parallel - len(free)
                if not active:
                    continue
                finished = self._advance(active)
                for sample in finished:
                    active.remove(sample)
                    self._release(sample, free)
                self.sequences_in_use = self.parallel - len(free)
                self._deliver(finished)
        except BaseException as error:  # a native failure: fail every caller, never hang one
            self._failure = error
            log.exception("the embedded model's decode thread failed")
            failed = SeidrError(f"the embedded model failed: {error}")
            for request in list(pending) + [s.request for s in active]:
                self._settle(request.future, exception=failed)
            while True:  # callers that submit later are refused by submit(); fail what is queued
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    return
                if item is not None:
                    self._settle(item.future, exception=failed)

    @staticmethod
    def _settle(future: concurrent.futures.Future, result: Any = None, exception: BaseException | None = None) -> None:
        """Give the caller its replies, unless it has cancelled meanwhile."""
        try:
            if exception is not None:
                future.set_exception(exception)
            else:
                future.set_result(result)
        except concurrent.futures.InvalidStateError:
            pass

    def _admit(self, pending: deque[_Request], free: list[int]) -> list[_Sample]:
        """Give the first waiting request as many sequences as are free and evaluate its prompt once
        for them; returns the samples, each with its first token drawn."""
        request = pending[0]
        prompt = request.prompt
        # exact batches evaluate every prompt from its start (the same chunks every time); otherwise
        # the free sequence whose cache shares the longest start with this prompt keeps that part
        if not self.exact:
            free.sort(key=lambda seq: _common_start(self._kept.get(seq, []), prompt))
        samples = []
        for number in range(min(len(free), len(request.waiting))):
            index = request.waiting.popleft()
            samples.append(_Sample(request=request, index=index, seq=free.pop(), pos=len(prompt),
                                   sampler=self._sampler(request.temperature, request.seeds[index]),
                                   counts_prompt=number == 0))
        if not request.waiting:
            pending.popleft()
        first = samples[0]
        # at least the prompt's last token is decoded again: its logits give the first draws
        kept = 0 if self.exact else min(_common_start(self._kept.get(first.seq, []), prompt), len(prompt) - 1)
        for sample in samples:
            self._kept.pop(sample.seq, None)
            self._ll.llama_memory_seq_rm(self._memory, sample.seq, kept if sample is first else -1, -1)
        # the prompt in decode calls of its own, in fixed chunks: its cache and logits do not
        # depend on what else is running
        self.prompt_tokens_decoded += len(prompt) - kept
        for start in range(kept, len(prompt), self.n_batch):
            end = min(len(prompt), start + self.n_batch)
            self._decode([(prompt[pos], pos, first.seq, pos == len(prompt) - 1) for pos in range(start, end)])
        last_row = (len(prompt) - 1 - kept) % self.n_batch
        for sample in samples:
            if sample is not first:
                self._ll.llama_memory_seq_cp(self._memory, first.seq, sample.seq, -1, -1)
            sample.logit_row = last_row
        # draw the first tokens now, while the prompt's logits are the context's latest
        finished = [s for s in samples if self._draw(s)]
        for sample in finished:
            samples.remove(sample)
            self._release(sample, free)
        self._deliver(finished)
        return samples

    def _deliver(self, finished: list[_Sample]) -> None:
        """Hand each request whose last sample just finished its replies (after its sequences
        are free again, so a caller never sees its replies while they are still held)."""
        for request in {id(s.request): s.request for s in finished}.values():
            if all(reply is not None for reply in request.replies):
                self._settle(request.future, list(request.replies))

    def _sampler(self, temperature: float, seed: int | None) -> Any:
        ll = self._ll
        chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
        if temperature <= 0:
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_greedy())
            return chain
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_top_k(TOP_K))
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_top_p(TOP_P, 1))
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_min_p(MIN_P, 1))
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_temp(temperature))
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_dist(RANDOM_SEED if seed is None else seed & 0xFFFFFFFF))
        return chain

    def _advance(self, active: list[_Sample]) -> list[_Sample]:
        """Decode the next token of every generating sequence and draw the one after; returns the
        samples whose replies are complete. Usually one decode call for all; two sequences go one
        by one where that was measured to be cheaper (a row's logits are the same either way)."""
        groups = [[sample] for sample in active] if len(active) == 2 and self.split_pairs else [active]
        finished = []
        for group in groups:
            rows = []
            for row, sample in enumerate(group):
                rows.append((sample.tokens[-1], sample.pos, sample.seq, True))
                sample.logit_row = row
                sample.pos += 1
            self._decode(rows)
            finished += [sample for sample in group if self._draw(sample)]
        return finished

    def _pairs_cost_more_than_two_singles(self) -> bool:
        """Whether one decode call of two rows takes longer than two calls of one row here (with
        llama.cpp's CPU kernels on two cores it does: 41 ms against 2 × 17 ms)."""
        prompt = self.tokenize("def f(x):\n    return x")
        try:
            self._evaluate_apart([prompt, prompt])
            timings = {}
            for rows in (1, 2):
                started = time.perf_counter()
                for step in range(4):
                    self._decode([(prompt[-1], len(prompt) + step, seq, True) for seq in range(rows)])
                timings[rows] = time.perf_counter() - started
                for seq in range(rows):
                    self._ll.llama_memory_seq_rm(self._memory, seq, len(prompt), -1)
            return timings[2] > 2 * timings[1]
        finally:
            self._ll.llama_memory_clear(self._memory, True)

    def _draw(self, sample: _Sample) -> bool:
        """Draw the sample's next token; True when its reply is complete."""
        token = self._ll.llama_sampler_sample(sample.sampler, self._ctx, sample.logit_row)
        if self._ll.llama_vocab_is_eog(self.vocab, token):
            self._finish(sample, "stop")
            return True
        sample.tokens.append(token)
        if len(sample.tokens) >= sample.request.max_tokens:
            self._finish(sample, "length")
            return True
        return False

    def _finish(self, sample: _Sample, reason: str) -> None:
        request = sample.request
        request.replies[sample.index] = Completion(
            text=self.detokenize(sample.tokens), finish_reason=reason,
            # the prompt was evaluated once for the samples admitted with this one: counted once
            prompt_tokens=len(request.prompt) if sample.counts_prompt else 0, completion_tokens=len(sample.tokens))

    def _release(self, sample: _Sample, free: list[int]) -> None:
        """Give back the sample's sequence and free its sampler. Outside exact mode the sequence's
        cache is kept for a later prompt that starts the same way (the next samples of a prompt,
        a repair prompt that repeats the task)."""
        if self.exact:
            self._ll.llama_memory_seq_rm(self._memory, sample.seq, -1, -1)
        else:
            decoded = sample.pos - len(sample.request.prompt)  # the last token drawn was never decoded
            self._kept[sample.seq] = sample.request.prompt + sample.tokens[:decoded]
        self._ll.llama_sampler_free(sample.sampler)
        free.append(sample.seq)
