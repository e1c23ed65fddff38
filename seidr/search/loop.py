"""The SEIDR loop: Synthesize drafts, Execute them, Instruct (explain a failure), Debug (repair
from each explanation), Rank (select parents), until a program passes every validation test or
`max_programs` programs exist. Besides it: the baselines (greedy, resample) and `adaptive`, which
repairs only programs that crash, from the error itself, and draws fresh drafts otherwise."""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Awaitable, Callable, Iterator, Sequence

from seidr.execution.base import TestOutcome
from seidr.llm.base import Completion
from seidr.llm.client import LLMClient
from seidr.problem import Problem
from seidr.prompts.common import DEFAULT_DEBUG_PROMPT, is_template, template_instruction
from seidr.prompts.extract import extract_code, reply_issue
from seidr.search.selection import Selection
from seidr.search.tree import Kind, Program, better

Evaluate = Callable[[str], Awaitable[list[TestOutcome]]]
OnProgram = Callable[[Program], None]


@dataclass(frozen=True)
class SearchParams:
    """The paper's names. One generation asks each of `beam_width` parents for
    `explanations_per_program` explanations and each explanation for `repairs_per_explanation`
    repairs."""

    max_programs: int = 100
    drafts_per_prompt: int = 2
    explanations_per_program: int = 2
    repairs_per_explanation: int = 2
    beam_width: int = 2
    # the first draft is greedy (temperature 0): small models do best on their most likely answer
    greedy_first_draft: bool = True
    # seidr: draft, explain, repair, rank; resample: independent drafts until solved or out of
    # budget (the baseline repair must beat); greedy: one draft at temperature 0
    strategy: str = "seidr"
    # replies that are empty, cut by the token limit or hold no code block: "keep" them as programs
    # (they fail and are recorded as such) or "drop" them (recorded nowhere as programs)
    bad_replies: str = "keep"
    # how Instruct words the bug: 0-5 fixed templates restating the failing test (no LLM call),
    # 6-10 explanations the LLM writes (see seidr.prompts.common)
    debug_prompt_id: int = DEFAULT_DEBUG_PROMPT
    # a program identical to one already scored is not scored again and costs no budget (the
    # search asks for another; at most max_programs repeats are forgiven, so it always ends)
    dedupe: bool = False
    # adaptive: the failures worth a repair. Small models fix an error they are shown (a crash, a
    # syntax or compile error) far more often than a wrong answer, which a fresh draft fixes better.
    repair_on: tuple[str, ...] = ("error", "syntax", "compile")


@dataclass(frozen=True)
class SearchOutcome:
    programs: list[Program]
    best: Program | None
    # the budget was not spent, but no program was left to repair (every reply was dropped)
    ran_out: bool = False

    @property
    def solved(self) -> bool:
        return self.best is not None and self.best.solved


STRATEGIES = ("seidr", "resample", "greedy", "adaptive")


class SeidrSearch:
    """Grows one search tree for one problem (or, as baselines, samples drafts only).
    `evaluate` scores code on the validation tests; `on_program` sees each program as soon as it
    is recorded (to save it before anything else)."""

    def __init__(self, problem: Problem, llm: LLMClient, evaluate: Evaluate, selection: Selection,
                 params: SearchParams, prompts: ModuleType, language: str, seed: int,
                 on_program: OnProgram = lambda program: None, explainer: LLMClient | None = None) -> None:
        self.problem = problem
        self.llm = llm
        # Instruct may ask another model (a stronger one) than the one that writes the programs
        self.explainer = explainer or llm
        self.evaluate = evaluate
        self.selection = selection
        self.params = params
        self.prompts = prompts
        self.language = language
        self.rng = random.Random(seed)
        self.on_program = on_program
        self.programs: list[Program] = []
        self.best: Program | None = None
        self._reserved = 0  # programs planned or made: the budget is checked against this
        self._pending: list[asyncio.Task] = []
        self.dropped_replies = 0
        self._slots_planned = 0  # search-order positions handed out to requests
        self._next_slot = 0  # the next position to record
        self._arrived: dict[int, dict | None] = {}
        self.duplicates = 0  # replies whose program was already scored (dedupe)
        self._seen: set[str] = set()
        # what the search is waiting for right now (a progress display reads it): LLM requests by
        # kind, and programs being run on the tests
        self.in_flight: Counter[str] = Counter()

    @property
    def solved(self) -> bool:
        return self.best is not None and self.best.solved

    async def run(self) -> SearchOutcome:
        if self.params.strategy == "greedy":
            self._reserve(1)
            await self._run_generation([self._job(self.prompts.draft(self.problem), 1, 0.0, None, "draft", 0, None)])
        elif self.params.strategy == "resample":
            await self._synthesize()
            batch = 0
            while not self.solved and self._reserved < self.params.max_programs:
                batch += 1
                count = self._reserve(self.params.drafts_per_prompt)
                await self._run_generation([self._job(self.prompts.draft(self.problem), count, None, None, "draft",
                                                      batch, None)])
        elif self.params.strategy == "adaptive":
            await self._adapt()
        else:
            population = await self._synthesize()
            generation = 0
            while population and not self.solved and self._reserved < self.params.max_programs:
                generation += 1
                parents = self.selection.select(population, self.params.beam_width, self.rng)
                made = await self._next_generation(parents, generation)
                # a generation of repeats only (dedupe): the same parents are asked again, since
                # repeats cost no budget and the search would otherwise end with budget left
                population = made if made or not self.params.dedupe else population
            ran_out = not population and not self.solved and self._reserved < self.params.max_programs
            return SearchOutcome(programs=list(self.programs), best=self.best, ran_out=ran_out)
        return SearchOutcome(programs=list(self.programs), best=self.best)

    async def _adapt(self) -> None:
        """Drafts as resample draws them (the same seeds), but after a round of drafts the best
        program that crashed and was not repaired yet gets `repairs_per_explanation` repairs from
        its error. Repair rounds never follow each other, so at least half the budget stays with
        drafts, which is where a small model's solves come from."""
        await self._synthesize(stream="draft")
        repaired: set[int] = set()
        batch = 0
        repaired_last = False
        while not self.solved and self._reserved < self.params.max_programs:
            target = None if repaired_last else self._crashed(repaired)
            if target is None:
                batch += 1
                count = self._reserve(self.params.drafts_per_prompt)
                job = self._job(self.prompts.draft(self.problem), count, None, None, "draft", 0, None, stream="draft")
            else:
                parent, test = target
                repaired.add(parent.id)
                count = self._reserve(self.params.repairs_per_explanation)
                messages = self.prompts.fix_error(self.problem, parent.code, self.problem.valid[test],
                                                  parent.outcomes[test])
                job = self._job(messages, count, None, parent.id, "repair", parent.generation + 1, None,
                                stream="repair")
            repaired_last = target is not None
            await self._run_generation([job])

    def _crashed(self, repaired: set[int]) -> tuple[Program, int] | None:
        """The best-scoring program not repaired yet that fails a validation test in a way
        `repair_on` names, with that test (the first such)."""
        best: Program | None = None
        for program in self.programs:
            if program.id not in repaired and not program.solved and better(program, best) and any(
                    o.status in self.params.repair_on for o in program.outcomes):
                best = program
        if best is None:
            return None
        return best, next(i for i, o in enumerate(best.outcomes) if o.status in self.params.repair_on)

    async def _synthesize(self, stream: str | None = None) -> list[Program]:
        count = self._reserve(self.params.drafts_per_prompt)
        messages = self.prompts.draft(self.problem)
        greedy = 1 if self.params.greedy_first_draft and count > 0 else 0
        jobs = []
        if greedy:
            jobs.append(self._job(messages, 1, 0.0, None, "draft", 0, None, stream=stream))
        if count - greedy > 0:
            jobs.append(self._job(messages, count - greedy, None, None, "draft", 0, None, stream=stream))
        return await self._run_generation(jobs)

    async def _next_generation(self, parents: Sequence[Program], generation: int) -> list[Program]:
        per_parent = self.params.explanations_per_program * self.params.repairs_per_explanation
        plans = []  # (parent, failing test index, number of repairs it may still spawn)
        for parent in parents:
            slots = self._reserve(per_parent)
            if slots == 0:
                break
            plans.append((parent, parent.worst_failure(), slots))
        if not plans:
            return []
        # Instruct: every parent's explanations are asked for at once
        explanations = await asyncio.gather(*(self._explain(parent, test, slots) for parent, test, slots in plans))
        # Debug: every explanation's repairs at once; each repair is scored as soon as it arrives
        jobs = []
        for (parent, test, slots), texts in zip(plans, explanations):
            # one template instruction stands for all of a parent's explanations
            templated = is_template(self.params.debug_prompt_id)
            repairs = slots if templated else self.params.repairs_per_explanation
            for index, text in enumerate(texts):
                n = min(repairs, slots - index * repairs)
                if n > 0:
                    messages = self.prompts.repair(self.problem, parent.code, self.problem.valid[test],
                                                   parent.outcomes[test], text)
                    jobs.append(self._job(messages, n, None, parent.id, "repair", generation, text))
        return await self._run_generation(jobs)

    async def _explain(self, parent: Program, test: int | None, slots: int) -> list[str]:
        assert test is not None, "only failing programs are explained"
        n = math.ceil(slots / self.params.repairs_per_explanation)
        failing, outcome = self.problem.valid[test], parent.outcomes[test]
        prompt_id = self.params.debug_prompt_id
        if is_template(prompt_id):
            # a template says the same thing each time: one instruction, its repairs sampled together
            return [template_instruction(prompt_id, self.problem, failing, outcome)]
        messages = self.prompts.explain(self.problem, parent.code, failing, outcome, prompt_id=prompt_id)
        with self._waiting("explain"):
            replies = await self.explainer.sample(messages, n=n)
        return [c.text.strip() for c in replies]

    def _job(self, messages, n: int, temperature: float | None, parent_id: int | None, kind: Kind,
             generation: int, explanation: str | None, stream: str | None = None) -> Awaitable[None]:
        """One LLM request for `n` programs, given the next `n` slots of the search order."""
        first = self._slots_planned
        self._slots_planned += n

        async def job() -> None:
            with self._waiting(kind):
                replies = await self.llm.sample(messages, n=n, temperature=temperature, stream=stream)
            await asyncio.gather(*(self._score(first + i, reply, parent_id, kind, generation, explanation)
                                   for i, reply in enumerate(replies[:n])))
            for slot in range(first + len(replies), first + n):  # a backend that returned fewer
                self._arrive(slot, None)

        return job()

    async def _score(self, slot: int, reply: Completion, parent_id: int | None, kind: Kind, generation: int,
                     explanation: str | None) -> None:
        issue = reply_issue(reply.text, reply.finish_reason, self.language)
        if issue and self.params.bad_replies == "drop":
            self.dropped_replies += 1
            self._arrive(slot, None)
            return
        code = extract_code(reply.text, self.language, must_define=self.problem.entry_point)
        if self.params.dedupe:
            # claimed before the first await, so of two equal replies the earlier in order is scored
            if code.strip() in self._seen:
                self.duplicates += 1
                if self.duplicates <= self.params.max_programs:
                    self._reserved -= 1
                self._arrive(slot, None)
                return
            self._seen.add(code.strip())
        with self._waiting("run"):
            outcomes = await self.evaluate(code)
        self._arrive(slot, dict(parent_id=parent_id, kind=kind, generation=generation, code=code,
                                outcomes=tuple(outcomes), explanation=explanation,
                                finish_reason=reply.finish_reason, reply_issue=issue,
                                tokens=reply.completion_tokens))

    @contextmanager
    def _waiting(self, what: str) -> Iterator[None]:
        self.in_flight[what] += 1
        try:
            yield
        finally:
            self.in_flight[what] -= 1

    def status(self) -> str:
        """What the search waits for now, in words: `2 draft requests · 3 programs running`."""
        words = {"draft": "draft requests", "explain": "explanations", "repair": "repair requests",
                 "run": "programs running"}
        parts = [f"{self.in_flight[what]} {label}" for what, label in words.items() if self.in_flight[what] > 0]
        return " · ".join(parts) or "-"

    def _arrive(self, slot: int, made: dict | None) -> None:
        """Programs are recorded in search order (the order they were asked for), whatever order
        they finish in: the tree, the ids and the stopping point do not depend on timing, so a
        rerun that replays the same replies rebuilds the same tree."""
        self._arrived[slot] = made
        while self._next_slot in self._arrived:
            made = self._arrived.pop(self._next_slot)
            self._next_slot += 1
            if made is None or self.solved:
                continue  # a dropped reply, or one asked for before a program earlier in order solved
            program = Program(id=len(self.programs), **made)
            self.programs.append(program)
            if better(program, self.best):
                self.best = program
            self.on_program(program)
            if program.solved:
                self._cancel_pending()

    async def _run_generation(self, jobs: list[Awaitable[None]]) -> list[Program]:
        """Run a generation's jobs concurrently; when a program solves, cancel the rest."""
        start = len(self.programs)
        self._pending = [asyncio.ensure_future(job) for job in jobs]
        if self._pending:
            await asyncio.wait(self._pending)
        # every job's error is retrieved (so none is reported as lost); the first is raised
        errors = [task.exception() for task in self._pending if not task.cancelled()]
        self._pending = []
        for error in errors:
            if error is not None:
                raise error  # a job's own error (e.g. the server is gone)
        return self.programs[start:]

    def _cancel_pending(self) -> None:
        current = asyncio.current_task()
        for task in self._pending:
            if task is not current and not task.done():
                task.cancel()

    def _reserve(self, wanted: int) -> int:
        granted = max(0, min(wanted, self.params.max_programs - self._reserved))
        self._reserved += granted
        return granted
