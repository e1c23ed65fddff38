"""What the search buys, offline: the embedded model at the same budget under each strategy.

    python -m benchmarks.quality                       # HumanEval 0-39 + all 25 PSB2 (Python), budget 10
    python -m benchmarks.quality --problems humaneval:0-19 psb2:fizz-buzz --budget 5

Jobs land in fixed folders under --output (default outputs/quality) and share one response
cache, so a rerun skips finished jobs and replays the rest from the cache: a second run prints
the table at once. greedy and resample draw no parents, so they run once (their selection
column reads "-"); seidr runs with beam and with lexicase selection. The table, and the anytime
plots of `python -m seidr.report <output>`, compare them."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seidr.app import run_job  # noqa: E402
from seidr.config import REPO_ROOT  # noqa: E402
from seidr.data.psb2 import PSB2Dataset  # noqa: E402
from seidr.dev import compose_config  # noqa: E402
from seidr.errors import SeidrError  # noqa: E402
from seidr.report import summarize, table_markdown  # noqa: E402
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
}
DEFAULT_CONFIGS = ["greedy", "resample", "seidr-beam", "seidr-lexicase"]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", nargs="*", help="dataset:problem ids (default: HumanEval 0-39 + PSB2)")
    parser.add_argument("--budget", type=int, default=10, help="max_programs per job")
    parser.add_argument("--configs", nargs="*", default=DEFAULT_CONFIGS, choices=list(CONFIGS))
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "outputs" / "quality")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data_dir = find_data_dir()
    if data_dir is None:
        sys.exit("no data: set DATA_PATH (see README)")
    problems = expand(args.problems, data_dir) if args.problems else default_problems(data_dir)
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    jobs = [(label, problem) for label in args.configs for problem in problems]
    for number, (label, problem) in enumerate(jobs, 1):
        dataset, _, name = problem.partition(":")
        folder = args.output / label / dataset / name.replace("/", "-")
        cfg = compose_config([f"dataset={dataset}", f"problem={name}", f"search.max_programs={args.budget}",
                              f"seed={args.seed}", "tracking=none", f"paths.data_dir={data_dir}",
                              f"model.cache_dir={args.output / 'llm_cache'}", *CONFIGS[label]])
        try:
            result = asyncio.run(run_job(cfg, folder)).result
            print(f"[{number}/{len(jobs)}] {label:15} {problem:28} solved={result['solved']!s:5} "
                  f"programs={result['programs']:3} {time.perf_counter() - started:7.0f} s", flush=True)
        except SeidrError as error:
            print(f"[{number}/{len(jobs)}] {label:15} {problem:28} failed: {error}", flush=True)
    print(f"\nembedded model, budget {args.budget}, {len(problems)} problems, seed {args.seed}; "
          f"{time.perf_counter() - started:.0f} s in all this time")
    print(table_markdown(summarize(args.output)))


if __name__ == "__main__":
    main()
