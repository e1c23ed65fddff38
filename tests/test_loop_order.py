"""Concurrent requests finishing in any order: the search records programs in the order they were
asked for, a solve cancels what is still pending and records nothing asked after it, and a replay
rebuilds the same tree. A gated scripted model lets each test choose the order replies finish."""

from __future__ import annotations

import asyncio
import hashlib
import random
import re

import pytest

from seidr.execution.base import TestOutcome
from seidr.llm.cache import ResponseCache
from seidr.llm.client import LLMClient
from seidr.problem import Example, Problem
from seidr.prompts import python as python_prompts
from seidr.search.loop import SearchParams, SeidrSearch
from seidr.search.selection import BeamSelection
from tests.scripted import GatedBackend, ScriptedBackend, until

PROBLEM = Problem(
    name="toy", dataset="test", description="Print the answer.", mode="stdio",
    valid=tuple(Example(f"{i}\n", f"{i}\n") for i in range(3)), test=(Example("9\n", "9\n"),),
)
# 3 drafts (a greedy request and one for two samples), then per generation 2 parents, 2
# explanations each, 2 repairs per explanation: two generations of 8 repairs
PARAMS = SearchParams(max_programs=3 + 2 * 8, drafts_per_prompt=3, explanations_per_program=2,
                      repairs_per_explanation=2, beam_width=2)
WAVES = [2, 2, 4, 2, 4]  # requests in flight together: drafts, explains, repairs, explains, repairs


def tagged(name: str, scores: str) -> str:
    return f"```python\n# {name}\n# scores: {scores}\n```"


def scores_of(code: str) -> list[float]:
    return [float(s) for s in re.search(r"# scores: (.*)", code).group(1).split()]


def hashed_reply(step, messages, index):
    """Replies that depend only on the conversation and the sample index, never on timing; no
    program passes test 2, so the search spends its budget."""
    digest = hashlib.sha256(f"{messages[-1].content}|{index}".encode()).hexdigest()
    if step == "explain":
        return f"bug {digest[:8]}"
    h = int(digest, 16)
    return tagged(f"{step} {digest[:8]}", f"{h % 3 / 2} {h // 3 % 3 / 2} {h // 9 % 2 / 2}")


def search_with(backend, evaluated: list[str], params=PARAMS, cache=None):
    async def evaluate(code: str) -> list[TestOutcome]:
        evaluated.append(code)
        return [TestOutcome("pass" if s == 1 else "wrong", s, actual="x") for s in scores_of(code)]

    llm = LLMClient(backend, temperature=0.7, max_tokens=100, max_concurrency=16, seed=0, cache=cache)
    saved = []
    search = SeidrSearch(PROBLEM, llm, evaluate, BeamSelection(), params, python_prompts, "python", 0,
                         on_program=saved.append)
    return search, saved


async def open_gate(gate, evaluated: list[str], task: asyncio.Future) -> None:
    """Let one request finish and its programs be scored (or the search end) before going on."""
    before = len(evaluated)
    gate.opened.set()
    programs = 0 if gate.step == "explain" else gate.n
    await until(lambda: task.done() or (gate.answered and len(evaluated) >= before + programs),
                f"request {gate.number} answered and scored")


def tree(programs):
    return [(p.id, p.parent_id, p.kind, p.generation, p.code, p.explanation) for p in programs]


def run_in_order(order, cache=None):
    """The search with every wave of concurrent requests finishing in the order `order` gives."""
    async def go():
        backend, evaluated = GatedBackend(hashed_reply), []
        search, saved = search_with(backend, evaluated, cache=cache)
        task = asyncio.ensure_future(search.run())
        for size in WAVES:
            await until(lambda: len(backend.waiting) == size, f"{size} requests waiting")
            for gate in order(backend.waiting):
                await open_gate(gate, evaluated, task)
        await until(task.done, "the search ended")
        return task.result(), saved, evaluated

    return asyncio.run(go())


ORDERS = {
    "as-asked": lambda wave: wave,
    "reversed": lambda wave: wave[::-1],
    "shuffled-1": lambda wave: random.Random(1).sample(wave, len(wave)),
    "shuffled-2": lambda wave: random.Random(2).sample(wave, len(wave)),
}


def test_the_tree_does_not_depend_on_the_order_replies_finish_in(tmp_path):
    backend, evaluated = ScriptedBackend(hashed_reply), []
    search, _ = search_with(backend, evaluated)
    expected = tree(asyncio.run(search.run()).programs)
    assert len(expected) == PARAMS.max_programs and {p[3] for p in expected} == {0, 1, 2}
    for name, order in ORDERS.items():
        outcome, saved, evaluated = run_in_order(order, cache=ResponseCache(tmp_path / name))
        assert tree(outcome.programs) == expected, name
        assert saved == outcome.programs, name  # each program was handed on in the same order
        if name == "reversed":  # they really finished out of order: scored in another order
            assert evaluated != [p.code for p in outcome.programs]
    # a replay answers every request from the cache of a run whose replies came back reversed
    async def replay():
        backend = GatedBackend(hashed_reply)  # the same backend identity, so the same cache keys
        search, _ = search_with(backend, [], cache=ResponseCache(tmp_path / "reversed"))
        task = asyncio.ensure_future(search.run())
        await until(lambda: task.done() or backend.gates, "the replay ended or asked the model")
        assert backend.gates == []  # not one request reached the model
        return await task

    assert tree(asyncio.run(replay()).programs) == expected


def solver_reply(step, messages, index):
    """Three failing drafts; the best one's second explanation leads to a repair that passes
    (the first sample of the second repair request asked for)."""
    text = messages[-1].content
    if step == "draft":
        return tagged(f"draft{index}", ["0.5 0.5 0", "0 0 0.5", "0 0 0"][index])
    if step == "explain":
        return "FIX-IT" if "# draft0" in text and index == 1 else f"no luck {index}"
    name = f"repair of {'draft0' if '# draft0' in text else 'draft1'} {index}"
    return tagged(name + " solved", "1 1 1") if "FIX-IT" in text and index == 0 else tagged(name, "0 0 0")


@pytest.mark.parametrize("opened, cancelled", [
    ([3, 0, 1], {2}),  # the last one finished first, one is still waiting when the solver lands
    ([0, 1], {2, 3}),
    ([3, 1, 2, 0], set()),  # everything after the solver finished before it could be recorded
], ids=["later-finished-first", "two-pending", "all-finished-before-the-solver"])
def test_a_solve_cancels_the_pending_requests_and_records_nothing_asked_after_it(opened, cancelled):
    params = SearchParams(max_programs=100, drafts_per_prompt=3, explanations_per_program=2,
                          repairs_per_explanation=2, beam_width=2, greedy_first_draft=False)

    async def go():
        backend, evaluated = GatedBackend(solver_reply), []
        search, saved = search_with(backend, evaluated, params)
        task = asyncio.ensure_future(search.run())
        for size in (1, 2):  # the drafts, then both parents' explanations, as asked
            await until(lambda: len(backend.waiting) == size, f"{size} requests waiting")
            for gate in backend.waiting:
                await open_gate(gate, evaluated, task)
        await until(lambda: len(backend.waiting) == 4, "4 repair requests waiting")
        repairs = backend.waiting
        for number in opened:
            await open_gate(repairs[number], evaluated, task)
        await until(task.done, "the search ended without the other requests")
        return task.result(), saved, evaluated, repairs

    outcome, saved, evaluated, repairs = asyncio.run(go())
    assert {number for number, gate in enumerate(repairs) if gate.cancelled} == cancelled
    assert not any(gate.answered for gate in repairs if gate.cancelled)
    codes = [p.code.split("\n")[0] for p in outcome.programs]
    assert codes == ["# draft0", "# draft1", "# draft2", "# repair of draft0 0", "# repair of draft0 1",
                     "# repair of draft0 0 solved"]
    assert outcome.solved and outcome.best is outcome.programs[-1] and saved == outcome.programs
    if 3 in opened:  # scored before the solve, asked after it: never recorded
        assert "# repair of draft1 0" in {code.split("\n")[0] for code in evaluated}


class GatedExecutor:
    """Stands in for the sandbox: records what it is asked to run, and each run waits at its own
    gate until the test opens it."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, tuple[Example, ...]]] = []
        self.gates: list[asyncio.Event] = []
        self.running = 0
        self.peak = 0
        self.gated = False

    async def run(self, source, tests, mode, *, entry_point=None, preamble="", signature=None):
        self.runs.append((source, tuple(tests)))
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            if self.gated:
                gate = asyncio.Event()
                self.gates.append(gate)
                await gate.wait()
        finally:
            self.running -= 1
        return [TestOutcome("wrong", 0.5, actual=f"{source}|{test.input}") for test in tests]


def test_the_evaluator_runs_each_code_on_each_test_once():
    from seidr.execution.verdicts import Evaluator

    executor = GatedExecutor()
    evaluator = Evaluator(executor, PROBLEM, workers=2)
    first = asyncio.run(evaluator.validation("print(1)\n"))
    assert executor.runs == [("print(1)\n", PROBLEM.valid)] and evaluator.cached_verdicts == 0
    assert asyncio.run(evaluator.validation("print(1)\n")) == first  # a repair identical to its parent
    assert len(executor.runs) == 1 and evaluator.cached_verdicts == 3
    extra = Example("7\n", "7\n")
    asyncio.run(evaluator.run("print(1)\n", [PROBLEM.valid[0], extra]))  # only the test not run before
    assert executor.runs[-1] == ("print(1)\n", (extra,)) and evaluator.cached_verdicts == 4
    asyncio.run(evaluator.validation("print(2)\n"))  # other code runs in full
    assert executor.runs[-1] == ("print(2)\n", PROBLEM.valid) and evaluator.cached_verdicts == 4


def test_the_evaluator_runs_at_most_workers_programs_at_once_and_uses_them_all():
    from seidr.execution.verdicts import Evaluator

    async def go():
        executor = GatedExecutor()
        executor.gated = True
        evaluator = Evaluator(executor, PROBLEM, workers=2)
        asked = [asyncio.ensure_future(evaluator.validation(f"print({k})\n")) for k in range(5)]
        for finished in range(5):
            await until(lambda: len(executor.gates) - finished == executor.running == min(2, 5 - finished),
                        f"{min(2, 5 - finished)} programs running")
            # the newest first: the limit holds whatever order they end in
            next(gate for gate in reversed(executor.gates) if not gate.is_set()).set()
        await until(lambda: all(task.done() for task in asked), "every program scored")
        assert all(len(task.result()) == 3 for task in asked)
        return executor

    executor = asyncio.run(go())
    assert executor.peak == 2 and len(executor.runs) == 5


def test_identical_code_scored_at_the_same_time_runs_once():
    """The greedy and a sampled draft are often the same program, and arrive together."""
    from seidr.execution.verdicts import Evaluator

    async def go():
        executor = GatedExecutor()
        executor.gated = True
        evaluator = Evaluator(executor, PROBLEM, workers=2)
        both = [asyncio.ensure_future(evaluator.validation("print(1)\n")) for _ in range(2)]
        await until(lambda: len(executor.gates) == 1, "the first copy running")
        executor.gates[0].set()
        await until(lambda: all(task.done() for task in both), "both copies scored")
        assert both[0].result() == both[1].result()
        return executor, evaluator

    executor, evaluator = asyncio.run(go())
    assert len(executor.runs) == 1 and evaluator.cached_verdicts == 3


def test_the_search_says_what_it_waits_for():
    """The progress display's line: between programs (explanations, repairs in flight) the search
    names what it is waiting for, so a long Instruct phase does not look hung."""
    seen: list[str] = []

    async def go():
        backend, evaluated = GatedBackend(hashed_reply), []
        search, _ = search_with(backend, evaluated)
        task = asyncio.ensure_future(search.run())
        for size in WAVES:
            await until(lambda: len(backend.waiting) == size, f"{size} requests waiting")
            seen.append(search.status())
            for gate in backend.waiting:
                await open_gate(gate, evaluated, task)
        await until(task.done, "the search ended")
        seen.append(search.status())

    asyncio.run(go())
    assert seen == ["2 draft requests", "2 explanations", "4 repair requests", "2 explanations",
                    "4 repair requests", "-"]
