"""One job: compose the parts a config names, search one problem, save every program and the result."""

from __future__ import annotations

import importlib
import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TaskID, TextColumn,
                           TimeElapsedColumn)
from rich.text import Text

from seidr.errors import SandboxBroken, SeidrError
from seidr.execution.base import ExecutionLimits
from seidr.execution.cgroup import DEFAULT_ROOT as DEFAULT_CGROUP_ROOT
from seidr.execution.cpp import CppExecutor
from seidr.execution.preflight import preflight
from seidr.execution.python import PythonExecutor
from seidr.execution.sandbox import Sandbox
from seidr.execution.verdicts import Critic, Evaluator
from seidr.llm.base import LLMBackend
from seidr.llm.cache import ResponseCache
from seidr.llm.client import LLMClient, Usage
from seidr.problem import Problem
from seidr.prompts.common import DEBUG_PROMPT_IDS, is_template
from seidr.redact import Redactor
from seidr.result import JobResult
from seidr.search.loop import STRATEGIES, SearchOutcome, SearchParams, SeidrSearch
from seidr.search.tree import Program, better
from seidr.tracking.lock import RunLock
from seidr.tracking.results import RunRecorder, RunRefused
from seidr.tracking.trackers import Trackers
from seidr.tracking.trackers import requested as requested_trackers
from seidr.validate import problem_warnings, validate_config

log = logging.getLogger("seidr")

LANGUAGES = ("python", "cpp")


def build(node: DictConfig) -> Any:
    """`hydra.utils.instantiate`, letting seidr's own user-facing errors through unwrapped."""
    try:
        return instantiate(node)
    except InstantiationException as error:
        cause = error.__cause__
        while cause is not None and not isinstance(cause, SeidrError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise SeidrError(f"bad config: {error}") from error


def load_problem(cfg: DictConfig) -> Problem:
    """The problem the config names, split by the config's seed and example counts."""
    dataset = build(cfg.dataset)
    return dataset.load(
        str(cfg.problem), seed=int(cfg.seed), valid_examples=int(cfg.search.valid_examples),
        test_examples=int(cfg.search.test_examples), prompt_examples=int(cfg.search.prompt_examples),
    )


def make_executor(cfg: DictConfig, output_dir: Path | None = None):
    """The sandboxed runner for the configured language (`output_dir`: the job's run folder,
    wherever it is, hidden from programs like the other answer folders)."""
    if cfg.language not in LANGUAGES:
        raise SeidrError(f"language={cfg.language} is not supported; use one of: {', '.join(LANGUAGES)}")
    limits = ExecutionLimits(**OmegaConf.to_container(cfg.execution.limits, resolve=True))
    hide = answer_folders(cfg) + ([output_dir] if output_dir is not None else [])
    sandbox = Sandbox(limits, isolation=str(cfg.execution.isolation), python=cfg.execution.get("python"),
                      hide=hide, cgroup_root=cfg.execution.get("cgroup_root", DEFAULT_CGROUP_ROOT))
    tolerance = cfg.execution.get("float_tolerance")
    if cfg.language == "cpp":
        return CppExecutor(sandbox, compiler=str(cfg.execution.cpp.compiler), flags=list(cfg.execution.cpp.flags),
                           float_tolerance=tolerance)
    return PythonExecutor(sandbox, float_tolerance=tolerance)


def answer_folders(cfg: DictConfig) -> list[Path]:
    """Folders where a program could look its answers up or read other runs' programs: the
    repository (data/ ships in it), the data folder, the dataset's own files, the outputs and
    the response cache. The namespace level hides them from programs."""
    keys = ("paths.root_dir", "paths.data_dir", "paths.output_root", "model.cache_dir", "tracking.git.path",
            "dataset.root", "dataset.path", "dataset.cpp_path")
    found = []
    for key in keys:
        value = OmegaConf.select(cfg, key, default=None)
        if value:
            path = Path(str(value)).expanduser()
            found.append(path if path.is_dir() or not path.suffix else path.parent)
    return found


def job_folders(cfg: DictConfig, output_dir: Path) -> list[Path]:
    """What a job writes that a program could read its way to a pass from (earlier programs with
    their failing tests and expected outputs): the run folder, the outputs, the response cache
    and the git archive, wherever each is."""
    keys = ("paths.output_root", "model.cache_dir", "tracking.git.path")
    found = [output_dir]
    for key in keys:
        value = OmegaConf.select(cfg, key, default=None)
        if value:
            found.append(Path(str(value)).expanduser())
    return found


def search_params(cfg: DictConfig) -> SearchParams:
    """The search group of a config as the loop's parameters."""
    search = cfg.search
    params = SearchParams(
        **{k: int(search[k]) for k in ("max_programs", "drafts_per_prompt", "explanations_per_program",
                                       "repairs_per_explanation", "beam_width")},
        greedy_first_draft=bool(search.greedy_first_draft), bad_replies=str(search.bad_replies),
        strategy=str(search.get("strategy", "seidr")), debug_prompt_id=int(search.debug_prompt_id),
        dedupe=bool(search.get("dedupe", False)),
        repair_on=tuple(str(status) for status in search.get("repair_on", SearchParams.repair_on)))
    if params.debug_prompt_id not in DEBUG_PROMPT_IDS:
        raise SeidrError(f"search.debug_prompt_id must be 0-10 (0-5 templates, 6-10 LLM explanations), "
                         f"not {params.debug_prompt_id}")
    if params.strategy not in STRATEGIES:
        raise SeidrError(f"search.strategy must be one of {', '.join(STRATEGIES)}, not {params.strategy!r}")
    if params.bad_replies not in ("keep", "drop"):
        raise SeidrError(f"search.bad_replies must be keep or drop, not {params.bad_replies!r}")
    return params


def make_client(cfg: DictConfig, backend: LLMBackend, model: DictConfig | None = None) -> LLMClient:
    """The backend wrapped with the configured cache, schedule, concurrency and price of `model`
    (a model group node: cfg.model unless given, e.g. cfg.explain_model)."""
    model = cfg.model if model is None else model
    price = cfg.get("llm_prices", {}).get(backend.model_name)
    return LLMClient(
        backend, temperature=float(model.temperature), max_tokens=int(model.max_tokens),
        max_concurrency=int(model.max_concurrency), seed=int(cfg.seed),
        cache=ResponseCache(model.cache_dir) if model.get("cache", False) else None,
        schedule=str(model.get("temperature_schedule", "fixed")),
        price=OmegaConf.to_container(price) if price is not None else None,
    )


@dataclass(frozen=True)
class JobOutcome:
    """Everything one job produced: the summary written to result.json and the program tree."""

    result: dict[str, Any]
    programs: list[Program]
    best: Program | None
    usage: Usage
    output_dir: Path


async def run_job(cfg: DictConfig, output_dir: Path, redactor: Redactor | None = None,
                  backend: LLMBackend | None = None,
                  on_claim: Callable[[], None] | None = None) -> JobOutcome:
    """Search the problem the config names (with `backend` instead of the configured model if given:
    jobs run side by side can share one embedded model, and so one batch). `on_claim` is called
    when the job claims its folder (with its first new program, or its end)."""
    validate_config(cfg)  # before the data is read: a bad key is one line, not a traceback later
    return await run_problem(cfg, load_problem(cfg), output_dir, backend=backend, redactor=redactor,
                             on_claim=on_claim)


async def run_problem(cfg: DictConfig, problem: Problem, output_dir: Path, backend: LLMBackend | None = None,
                      critic: Critic | None = None, redactor: Redactor | None = None,
                      on_claim: Callable[[], None] | None = None) -> JobOutcome:
    """Search one problem with the parts `cfg` names (or the given backend, which the caller keeps
    and closes), saving as it goes.
    `redactor` masks secrets in all it writes; entry points build it with the environment's.
    The config is validated by the entry points (run_job, seidr.dev), before they read it."""
    problem = replace(problem, warnings=tuple(problem_warnings(problem, int(cfg.search.test_examples))))
    with RunLock(output_dir):  # a second job in the folder would append every program again
        return await _run_problem(cfg, problem, output_dir, backend, critic, redactor, on_claim)


async def _run_problem(cfg: DictConfig, problem: Problem, output_dir: Path, backend: LLMBackend | None,
                       critic: Critic | None, redactor: Redactor | None,
                       on_claim: Callable[[], None] | None = None) -> JobOutcome:
    started = time.monotonic()
    redactor = redactor or Redactor.from_sources(config=cfg)
    recorder = _claim(cfg, problem, output_dir, redactor, on_claim)
    if (finished := recorder.finished_result()) is not None:
        recorder.claim_folder()
        _finish_tracking(cfg, problem, recorder, finished, redactor)
        return _finished_outcome(finished, recorder.earlier, output_dir)
    parts = await _assemble(cfg, problem, output_dir, backend, critic, recorder)
    tracking = _LazyTrackers(cfg, problem, recorder, redactor, parts.executor)
    try:
        searched = await _search(cfg, problem, parts, recorder, tracking)
    finally:
        await parts.aclose()
    # the result speaks of recorded programs only: a program the search made but the folder
    # refused (a full disk) is not the job's, however well it scored
    outcome = _recorded_outcome(searched.outcome, len(recorder.recorded))
    failure = searched.failure
    test_pass_rate = None
    if outcome.best is not None and failure is None:
        try:
            test_pass_rate = await _score_winner(parts.evaluator, outcome.best, problem)
        except SandboxBroken as error:  # the machine broke after the search: the rerun scores it
            failure = error
    result = _job_result(cfg, problem, parts, recorder, searched, outcome, test_pass_rate, failure,
                         wall_s=time.monotonic() - started).as_dict()
    if failure is not None and not recorder.recorded:
        raise failure  # it made no program: nothing to resume, and the folder is not claimed
    _write_result(recorder, tracking, result, outcome.programs, failure)
    spent = parts.usage()
    log.info("usage: %s", ", ".join(f"{k}={v}" for k, v in spent.as_dict().items()))
    if failure:
        raise failure
    return JobOutcome(result=result, programs=outcome.programs, best=outcome.best, usage=spent,
                      output_dir=output_dir)


def _claim(cfg: DictConfig, problem: Problem, output_dir: Path, redactor: Redactor,
           on_claim: Callable[[], None] | None) -> RunRecorder:
    """The job's recorder, holding what an earlier run of it recorded; refuses a folder that
    holds another job (another problem, model or search)."""
    recorder = RunRecorder(output_dir, problem.valid, redactor,
                           repair=bool(OmegaConf.select(cfg, "resume.repair", default=False)),
                           on_claim=on_claim)
    recorder.claim({"dataset": problem.dataset, "problem": problem.name, "language": str(cfg.language),
                    "seed": int(cfg.seed), "model": str(cfg.model.name),
                    "search": OmegaConf.to_container(cfg.search, resolve=True),
                    "selection": OmegaConf.to_container(cfg.selection, resolve=True)})
    return recorder


@dataclass
class _JobParts:
    """The parts a job assembles from its config before its first program."""

    executor: PythonExecutor | CppExecutor
    preflight_s: float
    llm: LLMClient
    explainer: LLMClient | None
    owns_backend: bool  # the job built its model, so it closes it
    params: SearchParams
    selection: Any
    prompts: Any  # the language's prompt module
    evaluator: Evaluator

    def usage(self) -> Usage:
        """Both models' spending: what the job's calls, tokens and cost count."""
        return self.llm.usage + self.explainer.usage if self.explainer is not None else self.llm.usage

    async def aclose(self) -> None:
        if self.explainer is not None:
            await self.explainer.aclose()
        if self.owns_backend:
            await self.llm.aclose()


async def _assemble(cfg: DictConfig, problem: Problem, output_dir: Path, backend: LLMBackend | None,
                    critic: Critic | None, recorder: RunRecorder) -> _JobParts:
    """Build the sandbox, models, selection and evaluator the config names, checking each before
    any budget is spent: a broken sandbox, a missing key or an unknown model stops the job here."""
    executor = make_executor(cfg, output_dir)
    _check_language(problem, executor.language)
    # a broken sandbox stops here (exit 2), not as a weak model (the stdin/stdout canary always:
    # it checks the sandbox itself; a function task adds its own protocol's)
    preflight_s = await preflight(executor, modes=tuple(dict.fromkeys(("stdio", problem.mode))))
    owns_backend = backend is None
    backend = backend or build(cfg.model.backend)
    prompts = importlib.import_module(f"seidr.prompts.{cfg.language}")
    params = search_params(cfg)
    selection = build(cfg.selection)
    log.info("problem %s/%s (%s): %d validation, %d test examples; split %s", problem.dataset, problem.name,
             cfg.language, len(problem.valid), len(problem.test), problem.split)
    for warning in problem.warnings:
        log.warning("%s", warning)
    llm = make_client(cfg, backend)
    try:
        explainer = _make_explainer(cfg, params)
    except BaseException:
        if owns_backend:
            await llm.aclose()
        raise
    evaluator = Evaluator(executor, problem, workers=int(cfg.execution.workers or os.cpu_count() or 1),
                          critic=critic)
    parts = _JobParts(executor=executor, preflight_s=preflight_s, llm=llm, explainer=explainer,
                      owns_backend=owns_backend, params=params, selection=selection, prompts=prompts,
                      evaluator=evaluator)

    def record_paid(_: Usage) -> None:
        spent = parts.usage()
        recorder.record_usage(spent.calls, spent.cost_usd)

    for client in (llm, explainer):
        if client is not None:
            client.on_paid = record_paid
    if recorder.earlier:
        # Resume: the search is replayed from the start; the LLM cache answers the requests it
        # made before, and the recorded verdicts stand in for running those programs again.
        log.info("resuming: %d programs were recorded in %s", len(recorder.earlier), recorder.programs_path)
        for program in recorder.earlier:
            evaluator.remember(program.code, problem.valid, program.outcomes)
    # no run user may read the job's files (the process level): closed before the first program
    # runs, and again once the trackers have made the archive
    executor.sandbox.close_to_programs(job_folders(cfg, output_dir))
    return parts


class _LazyTrackers:
    """The job's trackers, started with its first recorded program: a job refused at its first
    program leaves no W&B run and no archive."""

    def __init__(self, cfg: DictConfig, problem: Problem, recorder: RunRecorder, redactor: Redactor,
                 executor: PythonExecutor | CppExecutor) -> None:
        self._start = lambda: Trackers(cfg, problem, recorder.output_dir, recorder.programs_path, redactor)
        self._close_folders = lambda: executor.sandbox.close_to_programs(job_folders(cfg, recorder.output_dir))
        self._trackers: Trackers | None = None

    def get(self) -> Trackers:
        if self._trackers is None:
            self._trackers = self._start()
            self._close_folders()  # the archive exists now
        return self._trackers


@dataclass(frozen=True)
class _Searched:
    """What the search made, and the error that stopped it early (None when it ran its course)."""

    outcome: SearchOutcome
    failure: SeidrError | None
    dropped_replies: int
    duplicates: int


async def _search(cfg: DictConfig, problem: Problem, parts: _JobParts, recorder: RunRecorder,
                  tracking: _LazyTrackers) -> _Searched:
    """Run the search, recording and tracking each program as it is scored, with a progress bar."""
    bar = _progress(parts.params.max_programs)
    with bar as (progress, task):
        def saved(program: Program) -> None:
            recorder.add_program(program)
            tracking.get().add_program(program, search.best, parts.usage().as_dict())
            best = search.best
            progress.update(task, advance=1, best=f"{best.score:.3f}" if best else "-")
            log.info("program %d (%s, gen %d, parent %s): score %.3f, passed %d/%d", program.id, program.kind,
                     program.generation, program.parent_id, program.score,
                     sum(o.passed for o in program.outcomes), len(program.outcomes))

        search = SeidrSearch(problem, parts.llm, parts.evaluator.validation, parts.selection, parts.params,
                             parts.prompts, cfg.language, int(cfg.seed), on_program=saved,
                             explainer=parts.explainer)
        bar.waiting_for = search.status
        try:
            outcome = await search.run()
            failure = None
        except RunRefused:
            raise  # the folder holds another run: its records stay as they are
        except SeidrError as error:
            # e.g. the server died mid-run: keep what was made, say why the search stopped
            failure = error
            outcome = SearchOutcome(programs=list(search.programs), best=search.best)
    return _Searched(outcome=outcome, failure=failure, dropped_replies=search.dropped_replies,
                     duplicates=search.duplicates)


def _job_result(cfg: DictConfig, problem: Problem, parts: _JobParts, recorder: RunRecorder, searched: _Searched,
                outcome: SearchOutcome, test_pass_rate: float | None, failure: SeidrError | None,
                wall_s: float) -> JobResult:
    """result.json's content, from the recorded programs and the parts that made them."""
    best, params, explainer = outcome.best, parts.params, parts.explainer
    spent = parts.usage()
    # calls and cost of every run of this job (a resumed one replays the earlier runs' replies)
    total = recorder.total_usage(spent.calls, spent.cost_usd)
    explained = explainer.usage.as_dict() if explainer is not None else {}
    # a job that stopped on an error has not finished: its rerun decides, so it claims no solve
    solved = outcome.solved and failure is None
    return JobResult(
        problem=problem.name, dataset=problem.dataset, split=problem.split, language=str(cfg.language),
        model=parts.llm.model_name, seed=int(cfg.seed),
        selection=getattr(parts.selection, "name", type(parts.selection).__name__), strategy=params.strategy,
        solved=solved, val_score=best.score if best else 0.0, val_pass_rate=best.pass_rate if best else 0.0,
        test_pass_rate=test_pass_rate,
        # solved on validation but not on the held-out tests: hard-coded examples, or a lucky fit
        overfit=bool(solved and test_pass_rate is not None and test_pass_rate < 1.0),
        valid_examples=len(problem.valid), test_examples=len(problem.test), programs=len(outcome.programs),
        max_programs=params.max_programs, branching_factor=int(cfg.search.branching_factor),
        debug_prompt_id=params.debug_prompt_id, drafts_per_prompt=params.drafts_per_prompt,
        explanations_per_program=params.explanations_per_program,
        repairs_per_explanation=params.repairs_per_explanation, beam_width=params.beam_width,
        llm_calls=total["llm_calls"], prompt_tokens=spent.prompt_tokens, completion_tokens=spent.completion_tokens,
        cache_hits=spent.cache_hits, cost_usd=total["cost_usd"], llm_calls_this_run=spent.calls,
        explain_model=explainer.model_name if explainer is not None else None,
        explain_llm_calls=explained.get("llm_calls"), explain_prompt_tokens=explained.get("prompt_tokens"),
        explain_completion_tokens=explained.get("completion_tokens"),
        explain_cache_hits=explained.get("cache_hits"), explain_cost_usd=explained.get("cost_usd"),
        wall_s=round(wall_s, 3), best_program_id=best.id if best else None, best_program=best.code if best else None,
        dropped_replies=searched.dropped_replies, dedupe=params.dedupe, duplicates=searched.duplicates,
        cached_verdicts=parts.evaluator.cached_verdicts, isolation=parts.executor.sandbox.isolation,
        preflight_s=round(parts.preflight_s, 3),
        stopped="error" if failure else "solved" if outcome.solved else "no_replies" if outcome.ran_out else "budget",
        error=str(failure) if failure else None, warnings=list(problem.warnings))


def _write_result(recorder: RunRecorder, tracking: _LazyTrackers, result: dict[str, Any], programs: list[Program],
                  failure: SeidrError | None) -> None:
    """Claim the folder, write result.json and finish the trackers; a tracker that does not finish
    is left pending for the rerun."""
    try:
        recorder.claim_folder()  # a job whose every program was recorded before claims it with its result
        # killed after result.json, the rerun finishes these
        recorder.set_pending_tracking(tracking.get().requested)
        recorder.write_result(result)
    except SeidrError:
        if failure is None:
            raise
        raise failure from None  # a full disk refuses both: the first refusal is the one to report
    finished = tracking.get().finish(result, programs)
    recorder.set_pending_tracking([name for name in tracking.get().requested if name not in finished])


def _check_language(problem: Problem, language: str) -> None:
    """Refuse a problem whose tests the configured language cannot run."""
    # a function task's tests are code in one language (HumanEval-X's C++ tests say so in meta)
    tests_language = problem.meta.get("language", "python")
    if problem.mode == "function" and language == "python" and tests_language != "python":
        raise SeidrError(f"{problem.dataset} problem {problem.name} has {tests_language} tests; use "
                         f"language={tests_language}")
    if language == "cpp" and problem.mode != "stdio" and tests_language != "cpp":
        raise SeidrError(f"language=cpp runs stdin/stdout problems (PSB2, your own JSON lines); "
                         f"{problem.dataset} problem {problem.name} is a Python function task")


def _make_explainer(cfg: DictConfig, params: SearchParams) -> LLMClient | None:
    """The second model's client when the config names one (explain_model), else None."""
    if cfg.get("explain_model") is None:
        return None
    if params.strategy != "seidr" or is_template(params.debug_prompt_id):
        log.warning("explain_model is asked for no explanation: only search=seidr with debug_prompt_id "
                    "6-10 has the LLM explain a failure (here strategy %s, debug_prompt_id %d)",
                    params.strategy, params.debug_prompt_id)
    return make_client(cfg, build(cfg.explain_model.backend), cfg.explain_model)


async def _score_winner(evaluator: Evaluator, best: Program, problem: Problem) -> float | None:
    """The best program's pass rate on the held-out tests (None when the problem has none)."""
    outcomes = await evaluator.run(best.code, problem.test)
    return sum(o.passed for o in outcomes) / len(outcomes) if outcomes else None


def _finish_tracking(cfg: DictConfig, problem: Problem, recorder: RunRecorder, result: dict[str, Any],
                     redactor: Redactor) -> None:
    """A finished job's rerun: finish the trackers that did not finish (the job was killed after
    result.json), and nothing else."""
    pending = recorder.pending_tracking(requested_trackers(cfg))
    if not pending:
        log.info("this job already finished in %s: nothing to do", recorder.output_dir)
        return
    log.info("this job finished in %s but its tracking did not: finishing %s", recorder.output_dir,
             " and ".join(pending))
    trackers = Trackers(cfg, problem, recorder.output_dir, recorder.programs_path, redactor, only=pending)
    finished = trackers.finish(result, recorder.earlier)
    recorder.set_pending_tracking([name for name in pending if name not in finished])


def _recorded_outcome(outcome: SearchOutcome, recorded: int) -> SearchOutcome:
    """The search's outcome cut to its first `recorded` programs (those the folder holds), with
    the best among them as the search ranks programs."""
    if recorded >= len(outcome.programs):
        return outcome
    programs = outcome.programs[:recorded]
    best = None
    for program in programs:
        if better(program, best):
            best = program
    return replace(outcome, programs=programs, best=best)


def _finished_outcome(result: dict[str, Any], programs: list[Program], output_dir: Path) -> JobOutcome:
    """What a finished job left behind, read back (its rerun is a no-op)."""
    best = next((p for p in programs if p.id == result.get("best_program_id")), None)
    usage = Usage(calls=result.get("llm_calls", 0), prompt_tokens=result.get("prompt_tokens", 0),
                  completion_tokens=result.get("completion_tokens", 0), cache_hits=result.get("cache_hits", 0),
                  cost_usd=result.get("cost_usd"))
    return JobOutcome(result=result, programs=programs, best=best, usage=usage, output_dir=output_dir)


class _progress:
    """A progress bar of programs made against the budget, with the best score so far and what
    the search waits for now (requests in flight, programs running): between programs, an
    explain or repair phase can take minutes, and the line says so instead of looking hung."""

    def __init__(self, total: int) -> None:
        self.waiting_for: Callable[[], str] = lambda: "starting"
        self._progress = Progress(
            TextColumn("[bold]seidr"), BarColumn(), MofNCompleteColumn(), TextColumn("programs · best {task.fields[best]}"),
            TimeElapsedColumn(), _WaitingColumn(self), transient=False,
        )
        self._task = self._progress.add_task("search", total=total, best="-")

    def __enter__(self) -> tuple[Progress, TaskID]:
        self._progress.start()
        return self._progress, self._task

    def __exit__(self, *exc) -> None:
        self._progress.stop()


class _WaitingColumn(ProgressColumn):
    """Renders its bar's `waiting_for()` at each refresh."""

    def __init__(self, bar: _progress) -> None:
        super().__init__()
        self._bar = bar

    def render(self, task: Task) -> Text:
        return Text(f"· {self._bar.waiting_for()}", style="dim")
