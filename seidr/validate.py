"""A job's config and data checked where they enter: every key the job reads must have a type and
value it can use, so a bad one stops the job with one line naming the key, the value given and what
is allowed, before any data is read, model loaded or LLM called; and a problem whose split is legal
but suspicious is warned about instead of silently scored."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, get_args

from omegaconf import DictConfig, ListConfig, OmegaConf, read_write

from seidr.errors import SeidrError
from seidr.execution.base import ExecutionLimits, Status
from seidr.execution.sandbox import LEVELS
from seidr.llm.client import SCHEDULES
from seidr.llm.weights import MODELS as EMBEDDED_MODELS
from seidr.problem import Problem
from seidr.prompts.common import DEBUG_PROMPT_IDS
from seidr.search.loop import STRATEGIES

# language= as users of the original SEIDR write it (Python, C++) and as seidr does (python, cpp)
LANGUAGE_ALIASES = {"python": "python", "cpp": "cpp", "c++": "cpp"}
FAILURES = tuple(status for status in get_args(Status) if status != "pass")
_ABSENT = object()  # a key the config does not have (None is a value: null)


@dataclass(frozen=True)
class Rule:
    """What one key may hold: `allowed` says it in words, `accepts` checks a value."""

    allowed: str
    accepts: Callable[[Any], bool]
    required: bool = True  # False: the key exists only for some backends or configs
    nullable: bool = False


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # not NaN


def integer(minimum: int | None = None, maximum: int | None = None, **options: Any) -> Rule:
    """An integer, at least `minimum` and at most `maximum`."""
    if minimum is not None and maximum is not None:
        words = f"an integer from {minimum} to {maximum:,}"
    else:
        words = "an integer" + (f" ≥ {minimum}" if minimum is not None else "")
    return Rule(words, lambda v: _is_int(v) and (minimum is None or v >= minimum)
                and (maximum is None or v <= maximum), **options)


def number(low: float, high: float | None = None, low_open: bool = False, **options: Any) -> Rule:
    """A number in [low, high] ((low, high] when `low_open`); no `high`: any finite number above."""
    above = (lambda v: v > low) if low_open else (lambda v: v >= low)
    if high is not None:
        words = f"a number > {low:g} and ≤ {high:g}" if low_open else f"a number from {low:g} to {high:g}"
        return Rule(words, lambda v: _is_number(v) and above(v) and v <= high, **options)
    return Rule(f"a number {'>' if low_open else '≥'} {low:g}",
                lambda v: _is_number(v) and above(v) and math.isfinite(v), **options)


def choice(options: Any, words: str | None = None, **rule_options: Any) -> Rule:
    """One of `options`."""
    allowed = tuple(options)
    return Rule(words or "one of " + ", ".join(map(str, allowed)),
                lambda v: not isinstance(v, bool) and v in allowed, **rule_options)


BOOLEAN = Rule("true or false", lambda v: isinstance(v, bool))
TEXT = Rule("a non-empty string", lambda v: isinstance(v, str) and bool(v.strip()))
AT_LEAST_ONE = integer(1)
DAY_S = 86_400.0  # the longest wait any timeout may be: past it, a fault would look like a hang
# Limits have a ceiling as well as a floor: the largest value the kernel's limit (or the sandbox's
# arithmetic) can hold, so an absurd one is refused here, naming the key, instead of deep in a run
LIMIT_RULES: dict[str, Rule] = {
    "test_timeout_s": number(0, DAY_S, low_open=True),
    "test_cpu_s": integer(1, int(DAY_S)),
    "total_timeout_s": number(0, DAY_S, low_open=True),
    "memory_mb": integer(1, 1 << 20),  # 1 TiB of address space
    "max_processes": integer(1, 1 << 22),  # Linux's highest pid_max
    "max_file_bytes": integer(1, 1 << 40),
    "max_output_bytes": integer(1, 1 << 30),  # kept in memory, per test
    "compile_timeout_s": number(0, DAY_S, low_open=True),
    "compile_memory_mb": integer(1, 1 << 20),
    "open_files": integer(1, 1 << 20),  # Linux's default ceiling of RLIMIT_NOFILE (fs.nr_open)
    "disk_mb": integer(1, 1 << 20),
}

RULES: dict[str, Rule] = {
    "seed": integer(),
    "search.strategy": choice(STRATEGIES),
    "search.branching_factor": AT_LEAST_ONE,
    "search.max_programs": AT_LEAST_ONE,
    "search.drafts_per_prompt": AT_LEAST_ONE,
    "search.explanations_per_program": AT_LEAST_ONE,
    "search.repairs_per_explanation": AT_LEAST_ONE,
    "search.beam_width": AT_LEAST_ONE,
    "search.greedy_first_draft": BOOLEAN,
    "search.debug_prompt_id": choice(DEBUG_PROMPT_IDS, "an integer from 0 to 10 (0-5 templates, 6-10 LLM "
                                                       "explanations)"),
    "search.bad_replies": choice(("keep", "drop")),
    "search.dedupe": Rule(BOOLEAN.allowed, BOOLEAN.accepts, required=False),
    "search.repair_on": Rule(f"a list of test statuses ({', '.join(FAILURES)})",
                             lambda v: isinstance(v, list) and bool(v) and all(s in FAILURES for s in v),
                             required=False),
    "search.valid_examples": AT_LEAST_ONE,
    "search.test_examples": integer(0),
    "search.prompt_examples": integer(0),
    "model.name": TEXT,
    "model.temperature": number(0, 2),
    "model.temperature_schedule": choice(SCHEDULES, required=False),
    "model.cache": Rule(BOOLEAN.allowed, BOOLEAN.accepts, required=False),
    "model.max_tokens": AT_LEAST_ONE,
    "model.max_concurrency": AT_LEAST_ONE,
    "model.timeout_s": number(0, DAY_S, low_open=True, required=False),
    "model.max_retries": integer(0, required=False),
    "model.n_ctx": integer(1, required=False),
    "model.n_threads": integer(1, required=False, nullable=True),
    "model.parallel": integer(1, required=False),
    "model.exact_batches": Rule(BOOLEAN.allowed, BOOLEAN.accepts, required=False),
    "model.embedded": choice(EMBEDDED_MODELS, required=False),
    "execution.workers": integer(1, nullable=True),
    "execution.isolation": choice(LEVELS),
    "execution.python": Rule(TEXT.allowed, TEXT.accepts, required=False, nullable=True),
    "execution.cgroup_root": Rule(TEXT.allowed, TEXT.accepts, required=False, nullable=True),
    "execution.float_tolerance": number(0, required=False, nullable=True),
    "execution.cpp.compiler": TEXT,
    "execution.cpp.flags": Rule("a list of strings", lambda v: isinstance(v, list) and all(isinstance(f, str)
                                                                                         for f in v)),
    "resume.repair": Rule(BOOLEAN.allowed, BOOLEAN.accepts, required=False),
    # tracking=none (or tracking.git=null) leaves these out: then they are not checked
    "tracking.git.commit_every": integer(1, required=False),
    "tracking.git.push_every": integer(1, required=False),
    "tracking.git.push_retries": integer(0, required=False),
    "tracking.wandb.mode": choice(("offline", "online", "disabled"), required=False),
    "tracking.wandb.init_timeout_s": number(0, DAY_S, low_open=True, required=False),
    # every limit is a positive amount: a zero would fail every program and score the model for it
    **{f"execution.limits.{f.name}": LIMIT_RULES.get(f.name) or (integer(1) if f.type == "int"
                                                                  else number(0, low_open=True))
       for f in dataclasses.fields(ExecutionLimits)},
}


def validate_config(cfg: DictConfig) -> None:
    """Check every key a job reads and put `language` in seidr's spelling; SeidrError listing, on one
    line, each bad key with the value given and the values allowed."""
    errors = [*_language(cfg), *_problem(cfg)]
    bad: list[str] = []
    for key, rule in RULES.items():
        found = _check(cfg, key, rule)
        # drafts_per_prompt: ${.branching_factor} is wrong only because branching_factor is: say that once
        if found and not any(_follows(cfg, key, other) for other in bad):
            errors.extend(found)
        bad += [key] if found else []
    if OmegaConf.select(cfg, "explain_model") is not None:  # model@explain_model=...: read as model is
        errors.extend(error for key, rule in RULES.items() if key.startswith("model.")
                      for error in _check(cfg, "explain_" + key, rule))
    limits = OmegaConf.select(cfg, "execution.limits")
    if isinstance(limits, DictConfig):
        names = [f.name for f in dataclasses.fields(ExecutionLimits)]
        errors.extend(f"execution.limits.{key} is not a limit; the limits are {', '.join(names)}"
                      for key in limits if key not in names)
    if errors:
        raise SeidrError("; ".join(errors))


def problem_warnings(problem: Problem, test_examples: int) -> list[str]:
    """What is legal but suspicious about the problem's split; SeidrError when nothing can validate."""
    if not problem.valid:
        raise SeidrError(f"{problem.dataset} problem {problem.name} has no validation examples, so nothing "
                         "to score programs on; check its data files")
    warnings = list(problem.warnings)
    if not problem.test:
        warnings.append(f"{problem.dataset} problem {problem.name} has no test examples "
                        f"(search.test_examples={test_examples}): test_pass_rate will be null")
    return warnings


def _check(cfg: DictConfig, key: str, rule: Rule) -> list[str]:
    try:
        value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=True)
    except Exception as error:  # a missing value (???) or an interpolation that cannot resolve
        return [f"{key} cannot be read ({error}); set {key}=<{rule.allowed}>"]
    if value is _ABSENT:
        return [f"{key} is missing; set {key}=<{rule.allowed}>"] if rule.required else []
    if value is None and rule.nullable:
        return []
    if isinstance(value, ListConfig):
        value = OmegaConf.to_container(value, resolve=True)
    if rule.accepts(value):
        return []
    return [f"{key} must be {rule.allowed}{' or null' if rule.nullable else ''}, not {_shown(value)}"]


def _follows(cfg: DictConfig, key: str, other: str) -> bool:
    """Whether `key` is an interpolation that names `other`'s key."""
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    if not isinstance(parent, DictConfig) or not OmegaConf.is_interpolation(parent, leaf):
        return False
    return other.rpartition(".")[2] in str(parent._get_node(leaf)._value())


def _language(cfg: DictConfig) -> list[str]:
    given = OmegaConf.select(cfg, "language", default=None)
    canonical = LANGUAGE_ALIASES.get(given.strip().lower()) if isinstance(given, str) else None
    if canonical is None:
        shown = given if isinstance(given, str) else _shown(given)
        return [f"language={shown} is not supported; use python or cpp (any case; C++ means cpp)"]
    if canonical != given:
        with read_write(cfg):
            cfg.language = canonical  # the dataset, prompts and records all read seidr's spelling
    return []


def _problem(cfg: DictConfig) -> list[str]:
    problem = OmegaConf.select(cfg, "problem", default=None)
    if isinstance(problem, bool) or not isinstance(problem, (str, int)) or not str(problem).strip():
        return [f"problem must be a problem name, not {_shown(problem)}; e.g. problem=fizz-buzz"]
    return []


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, str) else str(value)

