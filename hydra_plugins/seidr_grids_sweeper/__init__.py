"""A Hydra sweeper for tables that are not one grid: a union of grids, each a cartesian product
like the basic sweeper's, run one after the other. A job in two grids runs twice, as a table
that lists it twice asks (its second run replays the first one's replies from the LLM cache).

The paper's tables are such unions (e.g. lexicase at four tree arities plus no lexicase at six),
so one `-m` command reproduces one table exactly. Lives in `hydra_plugins` because Hydra only
instantiates sweepers found there.

Every job knows its row of the full table (`experiment_row`, which names its run folder), however
the command line narrows the grids: a slice such as `problem=gcd language=python` runs in the same
folders as the whole table would, so a slice's work is resumed by the full run and never collides
with another row's. `hydra.sweeper.row=N` runs row N alone (what a Slurm array task does)."""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from seidr.redact import Redactor


class GridsSweeper(Sweeper):
    """`grids`: a list of {key: comma-separated values}; `params` and the command line's
    overrides apply to every grid (the command line wins over both)."""

    def __init__(self, max_batch_size: int | None = None, params: Mapping[str, str] | None = None,
                 grids: Sequence[Mapping[str, str]] | None = None, row: int | None = None) -> None:
        super().__init__()
        self.max_batch_size = max_batch_size
        self.params = dict(params or {})
        self.grids = [dict(grid) for grid in (grids or [])] or [{}]
        self.row = row
        self.config: DictConfig | None = None
        self.launcher: Launcher | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context = hydra_context
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def job_overrides(self, arguments: Sequence[str]) -> list[list[str]]:
        """Every job's overrides, grid after grid, each grid's jobs in cartesian order (the first
        key outermost)."""
        loader = self.hydra_context.config_loader if self.hydra_context is not None else None
        parser = OverridesParser.create(config_loader=loader)
        jobs: list[list[str]] = []
        for grid in self.grids:
            merged = {**self.params, **grid}
            lines = [f"{key}={value}" for key, value in merged.items()] + list(arguments)
            values: dict[str, list[str]] = {}  # later lines win, in the first one's place
            for override in parser.parse_overrides(lines):
                key = override.get_key_element()
                if override.is_sweep_override():
                    values[key] = [f"{key}={v}" for v in override.sweep_string_iterator()]
                else:
                    values[key] = [f"{key}={override.get_value_element_as_str()}"]
            jobs.extend(_product(list(values.values())))
        return jobs

    def table_keys(self) -> set[str]:
        """The keys the table varies (its grids' and params' keys): what tells its rows apart."""
        return {key for grid in self.grids for key in grid} | set(self.params)

    def rows(self, jobs: list[list[str]]) -> list[str]:
        """Each job's row of the full table, as a folder prefix: its number from 0 in the table's
        order, or `x<digest>` for a job the table does not hold (the command line set a table key
        to a value no row has). A job listed twice in the table (gecco23) takes its rows in turn."""
        keys = self.table_keys()

        def row_key(job: list[str]) -> tuple[str, ...]:
            return tuple(sorted(o for o in job if o.split("=", 1)[0].lstrip("+~") in keys))

        table: dict[tuple[str, ...], list[int]] = {}
        for number, job in enumerate(self.job_overrides([])):
            table.setdefault(row_key(job), []).append(number)
        seen: Counter[tuple[str, ...]] = Counter()
        rows = []
        for job in jobs:
            same = tuple(sorted(job))  # the grids may list a job's keys in other orders
            turn = seen[same]
            seen[same] += 1
            numbers = table.get(row_key(job), [])
            if turn < len(numbers):
                rows.append(str(numbers[turn]))
            else:
                digest = hashlib.sha256(json.dumps([row_key(job), turn]).encode()).hexdigest()[:6]
                rows.append(f"x{digest}")
        return rows

    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None
        jobs = self.job_overrides(arguments)
        rows = self.rows(jobs)
        if self.row is not None:
            jobs, rows = self._one_row(jobs, rows)
        jobs = [[*job, f"experiment_row={row}"] for job, row in zip(jobs, rows)]
        size = self.max_batch_size or len(jobs) or 1
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        # secrets on the command line (model.api_key=..., a remote URL with a token) are masked
        # in what the sweep writes and prints; each job masks its own files (main.py)
        redactor = Redactor.from_sources(overrides=[override for job in jobs for override in job])
        (sweep_dir / "multirun.yaml").write_text(redactor.yaml(OmegaConf.to_yaml(self.config)), encoding="utf-8")
        # the whole job list up front, so a report can name the jobs that never ran
        (sweep_dir / "sweep_jobs.json").write_text(redactor.message(json.dumps(jobs, indent=0)), encoding="utf-8")
        returns = []
        for first in range(0, len(jobs), size):
            batch = jobs[first:first + size]
            self.validate_batch_is_legal(batch)
            # a failed job does not stop the sweep: seidr.sweep_callback lists failed jobs at the
            # end and exits 2, as it does for every sweeper
            returns.append(self.launcher.launch(batch, initial_job_idx=first))
        return returns


    def _one_row(self, jobs: list[list[str]], rows: list[str]) -> tuple[list[list[str]], list[str]]:
        """The command's jobs that are row `self.row` of the table (one, unless the command sweeps
        keys the table does not, such as seeds); none is a one-line error."""
        picked = [(job, row) for job, row in zip(jobs, rows) if row == str(self.row)]
        name = _experiment_name(self.config)
        if not picked:
            size = len(self.job_overrides([]))
            print(f"seidr: error: row {self.row} is not among this command's jobs: {name} has rows 0 to "
                  f"{size - 1}, and the command line's table keys ({', '.join(sorted(self.table_keys()))}) "
                  "must leave that row in", file=sys.stderr)
            sys.exit(2)
        keys = self.table_keys()
        shown = " ".join(o for o in picked[0][0] if o.split("=", 1)[0] in keys)
        print(f"seidr: row {self.row} of {name}: {shown}", file=sys.stderr)
        return [job for job, _ in picked], [row for _, row in picked]


def _experiment_name(config: DictConfig | None) -> str:
    choices = OmegaConf.select(config, "hydra.runtime.choices", default=None) if config is not None else None
    return str((choices or {}).get("experiments") or "the table")


def _product(choices: list[list[str]]) -> list[list[str]]:
    jobs: list[list[str]] = [[]]
    for options in choices:
        jobs = [job + [option] for job in jobs for option in options]
    return jobs
