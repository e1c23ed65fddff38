"""seidr's entry point: `python main.py [group=option ...] [key=value ...]` runs one problem;
`python main.py -m ...` sweeps. See conf/config.yaml for the groups."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from seidr.config import register_resolvers
from seidr.errors import SeidrError

register_resolvers()
log = logging.getLogger("seidr")
FAILED_JOB = float("nan")  # a sweep job's return value when it stopped on an error


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    from seidr.app import run_job  # after Hydra parsed the command line, so --help stays fast

    output_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        result = asyncio.run(run_job(cfg, output_dir)).result
    except SeidrError as error:
        log.error("%s", error)
        print(f"seidr: error: {error}", file=sys.stderr)
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            # one bad job must not end a sweep, and under submitit an exit would leave the
            # launcher waiting for a result that never comes; the sweep reports failed jobs
            return FAILED_JOB
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"seidr: interrupted; programs so far are in {output_dir}/programs.jsonl", file=sys.stderr)
        sys.exit(130)
    verdict = "solved" if result["solved"] else "not solved"
    print(f"{result['dataset']}/{result['problem']}: {verdict} · validation score {result['val_score']:.3f} · "
          f"test pass rate {_rate(result['test_pass_rate'])} · {result['programs']} programs · "
          f"{result['llm_calls']} LLM calls ({result['cache_hits']} cached) · "
          f"{result['prompt_tokens'] + result['completion_tokens']} tokens{_cost(result['cost_usd'])} · {result['wall_s']:.1f} s → {output_dir}/result.json")
    return float(result["val_score"])


def _cost(value: float | None) -> str:
    return "" if value is None else f" · ${value:.4f}"


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main()
