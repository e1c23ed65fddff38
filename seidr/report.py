"""`python -m seidr.report <sweep or benchmark folder>`: every job's result.json under a folder,
turned into the paper's view: report.md and report.csv (per configuration: problems solved on
validation and on test, mean test pass rate, programs, tokens, wall time) and PNG plots (anytime
curves: problems solved against programs spent and against tokens spent, one line per
configuration; solved problems against tree arity when the folder holds several). Jobs that
failed or never finished are listed, not dropped.

Seeds are an axis: a configuration's jobs over several seeds are one configuration (the label
never names the seed). Each configuration's problems solved carry a 95 % interval, and
comparisons.csv pairs configurations problem by problem (`--baseline TEXT`: each against one)."""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seidr import compare, stats
from seidr.prompts.common import DEFAULT_DEBUG_PROMPT
from seidr.redact import Redactor


@dataclass
class ConfigSummary:
    """The jobs of one configuration."""

    config: str
    results: list[dict[str, Any]] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)  # run folders without a result
    failed: list[str] = field(default_factory=list)  # stopped by an error

    def row(self) -> dict[str, Any]:
        done = self.results
        rates = [r["test_pass_rate"] for r in done if r.get("test_pass_rate") is not None]
        return {
            "config": self.config, "jobs": len(done) + len(self.unfinished),
            "solved_validation": sum(bool(r["solved"]) for r in done),
            "solved_test": sum(r.get("test_pass_rate") == 1.0 for r in done),
            "mean_test_pass_rate": round(sum(rates) / len(rates), 4) if rates else None,
            "programs": sum(r["programs"] for r in done),
            "llm_calls": sum(r.get("llm_calls", 0) for r in done),
            "tokens": sum(r.get("prompt_tokens", 0) + r.get("completion_tokens", 0) for r in done),
            "wall_s": round(sum(r.get("wall_s", 0) for r in done), 1),
            "failed": len(self.failed), "unfinished": len(self.unfinished),
        }


def config_label(result: dict[str, Any], arity: str | None = None) -> str:
    """A configuration's name in tables and plot legends; `arity` replaces the branching factor
    shown (the arity plot groups across it)."""
    strategy = result.get("strategy", "seidr")
    selection = result.get("selection") if strategy == "seidr" else "-"
    prompt_id = result.get("debug_prompt_id", DEFAULT_DEBUG_PROMPT)
    # the debug prompt and the tree's shape only tell configurations apart when a study varies them
    prompt = f" · debug prompt {prompt_id}" if strategy == "seidr" and prompt_id != DEFAULT_DEBUG_PROMPT else ""
    bf = result.get("branching_factor", "?")
    shape = ""
    if strategy == "seidr":
        usual = {"drafts_per_prompt": bf, "explanations_per_program": 2, "repairs_per_explanation": bf,
                 "beam_width": bf}
        shape = "".join(f" · {key} {result[key]}" for key, value in usual.items()
                        if result.get(key, value) != value)
    # dedupe is adaptive's own; elsewhere it makes a configuration of its own
    dedupe = " · dedupe" if result.get("dedupe") and strategy != "adaptive" else ""
    explainer = f" · explained by {result['explain_model']}" if result.get("explain_model") else ""
    return (f"{strategy} · {selection} · {result.get('dataset')} · {result.get('model')} · "
            f"{result.get('language')} · bf {bf if arity is None else arity} · budget {result.get('max_programs')}"
            f"{prompt}{shape}{dedupe}{explainer}")


def summarize(folder: Path, redactor: Redactor | None = None) -> list[ConfigSummary]:
    """One summary per configuration found under `folder`, with secrets masked (a job's error, or
    an old sweep's job list with model.api_key=... in it): tables, plots and files come from here."""
    redactor = redactor or Redactor()
    groups: dict[str, ConfigSummary] = {}
    unfinished_runs = []
    for programs in sorted(folder.rglob("programs.jsonl")):
        result_path = programs.parent / "result.json"
        if not result_path.is_file():
            unfinished_runs.append(str(programs.parent.relative_to(folder)))
            continue
        result = json.loads(result_path.read_text(encoding="utf-8"))
        if (damage := unrecorded_best(result, programs)) is not None:
            unfinished_runs.append(f"{programs.parent.relative_to(folder)} (damaged: {damage})")
            continue
        result = redactor.data(result)
        result["_folder"] = str(programs.parent.relative_to(folder))
        label = config_label(result)
        summary = groups.setdefault(label, ConfigSummary(label))
        summary.results.append(result)
        if result.get("stopped") == "error":
            summary.failed.append(result["_folder"])
    missing = [redactor.message(f"job {number} ({' '.join(overrides)}): no programs (never started, or "
                                "stopped on an error before its search)")
               for number, overrides in never_started(folder)]
    if unfinished_runs or missing:
        groups.setdefault("unfinished", ConfigSummary("unfinished")).unfinished.extend(unfinished_runs + missing)
    return list(groups.values())


def unrecorded_best(result: dict[str, Any], programs_jsonl: Path) -> str | None:
    """Why a result cannot be counted, when its best program is not the one its programs.jsonl
    holds under that id (or it claims a solve with no best program); None when it is."""
    best_id = result.get("best_program_id")
    if best_id is None:
        return "it claims a solve with no best program" if result.get("solved") else None
    lines = programs_jsonl.read_bytes().splitlines()
    try:
        recorded = json.loads(lines[best_id])["code"] if isinstance(best_id, int) and best_id >= 0 else None
    except (IndexError, ValueError, KeyError, TypeError):
        recorded = None
    if recorded is None or recorded != result.get("best_program"):
        return f"its best program {best_id} is not the one programs.jsonl records"
    return None


def never_started(folder: Path) -> list[tuple[int | str, list[str]]]:
    """Jobs a sweep planned (its sweep_jobs.json, written by the grids sweeper) whose run folder
    holds no programs.jsonl. A run folder's name starts with the job's row of the table
    (`experiment_row`, `<row>_…`); an older plan without rows is numbered in its order."""
    plan = folder / "sweep_jobs.json"
    if not plan.is_file():
        return []
    started = {path.parent.name.split("_", 1)[0] for path in folder.glob("*/programs.jsonl")}
    jobs = json.loads(plan.read_text(encoding="utf-8"))
    missing: list[tuple[int | str, list[str]]] = []
    for number, overrides in enumerate(jobs):
        row = next((o.split("=", 1)[1] for o in overrides if o.startswith("experiment_row=")), str(number))
        if row not in started:
            missing.append((int(row) if row.isdigit() else row, overrides))
    return missing


def table_markdown(summaries: list[ConfigSummary]) -> str:
    columns = ["config", "jobs", "solved_validation", "solved_test", "mean_test_pass_rate", "programs", "llm_calls",
               "tokens", "wall_s"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for summary in summaries:
        row = summary.row()
        lines.append("| " + " | ".join("" if row[c] is None else str(row[c]) for c in columns) + " |")
    return "\n".join(lines)


def anytime(results: list[dict[str, Any]], key: str,
            until: float | None = None) -> tuple[list[float], list[int]]:
    """Steps of (spend, problems solved with at most that spend): a search stops when it solves,
    so a solved job's spend is what solving it took. `until` (the budget) ends the curve there,
    flat after the last solve: spending the rest of the budget solved nothing more."""
    spent = sorted(float(r[key]) for r in results if r["solved"])
    solved = list(range(1, len(spent) + 1))
    if until is not None and (not spent or until > spent[-1]):
        spent, solved = [*spent, float(until)], [*solved, len(solved)]
    return spent, solved


def budget(results: list[dict[str, Any]]) -> int | None:
    """The most programs any of these jobs was allowed (result.json's max_programs)."""
    budgets = [int(r["max_programs"]) for r in results if r.get("max_programs")]
    return max(budgets) if budgets else None


def _with_tokens(result: dict[str, Any]) -> dict[str, Any]:
    return dict(result, tokens=result.get("prompt_tokens", 0) + result.get("completion_tokens", 0))


def _token_grid(results: list[dict[str, Any]], points: int = 400) -> np.ndarray:
    """Token spends to draw the curve at: 0, every solve's spend (thinned to `points`), and the
    most any job spent."""
    solves = sorted({float(r["tokens"]) for r in results if r["solved"]})
    if len(solves) > points:
        solves = list(np.quantile(solves, np.linspace(0, 1, points)))
    most = max([float(r["tokens"]) for r in results] + [1.0])
    return np.array(sorted({0.0, *solves, most}))


def anytime_matrix(results: list[dict[str, Any]], key: str, grid: np.ndarray) -> np.ndarray | None:
    """Rows: problems; columns: spends in `grid`; a cell: the share of the problem's seeds that
    solved it with at most that spend (a search stops when it solves, so a solved job's spend is
    what solving it took). Its column sums are the anytime curve; None without an outcome."""
    spends: dict[tuple[str, str], list[float]] = defaultdict(list)
    for result in results:
        if result.get("stopped") == "error":
            continue
        problem = (str(result.get("dataset")), str(result.get("problem")))
        spends[problem].append(float(result[key]) if result["solved"] else math.inf)
    if not spends:
        return None
    return np.array([[(np.asarray(v) <= x).mean() for x in grid] for v in spends.values()])


def pass_rate_curve(runs: list[Path]) -> list[float]:
    """Mean over jobs of the best validation pass rate among a job's first k programs, for k = 1…
    the longest job (programs.jsonl in search order; a job that stopped early keeps its last best)."""
    bests: list[list[float]] = []
    for run in runs:
        best, curve = 0.0, []
        with (run / "programs.jsonl").open(encoding="utf-8") as lines:
            for line in lines:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    break  # a torn last line of a killed job
                best = max(best, float(record.get("val_pass_rate", 0.0)))
                curve.append(best)
        if curve:
            bests.append(curve)
    if not bests:
        return []
    longest = max(len(curve) for curve in bests)
    padded = [curve + [curve[-1]] * (longest - len(curve)) for curve in bests]
    return [sum(column) / len(padded) for column in zip(*padded)]


def plot(summaries: list[ConfigSummary], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator

    made: list[Path] = []
    finished = [s for s in summaries if s.results]
    if not finished:  # every job failed or is still running: nothing to draw
        return made
    # one row per dataset: PSB2's handful of solves would be flat beside HumanEval's dozens
    rows: dict[str, list[ConfigSummary]] = defaultdict(list)
    for summary in finished:  # a summary's label names its dataset, so its jobs share one
        rows[str(summary.results[0].get("dataset"))].append(summary)
    # a configuration keeps its colour in every row (the default cycle repeats after ten lines)
    names = sorted({_without_dataset(s) for s in finished})
    palette = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    colour = {name: palette(index % palette.N) for index, name in enumerate(names)}
    figure, grid = plt.subplots(len(rows), 3, figsize=(18, 4.5 * len(rows)), squeeze=False)
    for axes, (dataset, row) in zip(grid, sorted(rows.items())):
        spent = [_with_tokens(r) for s in row for r in s.results]
        # one spend axis per row for every configuration; the token axis runs to the most any job
        # spent, so a row where nothing was solved still has a real axis
        grids = {"programs": np.arange(0, (budget(spent) or max(r["programs"] for r in spent)) + 1, dtype=float),
                 "tokens": _token_grid(spent)}
        for summary in row:
            name = _without_dataset(summary)
            results = [_with_tokens(r) for r in summary.results]
            for axis, key in zip(axes, ("programs", "tokens")):
                matrix = anytime_matrix(results, key, grids[key])
                if matrix is None:
                    continue
                problems = matrix.shape[0]
                axis.step(grids[key], matrix.sum(axis=0), where="post", label=name, color=colour[name])
                band = stats.mean_band(matrix)
                if band is not None:  # a 95 % bootstrap band over problems (mean over seeds)
                    axis.fill_between(grids[key], band[0] * problems, band[1] * problems, step="post",
                                      color=colour[name], alpha=0.15, linewidth=0)
            curve = pass_rate_curve([folder / r["_folder"] for r in summary.results])
            axes[2].plot(range(1, len(curve) + 1), curve, label=name, color=colour[name])
        jobs = max(len(compare.outcomes(s.results)) for s in row)
        for axis, what in zip(axes, ("programs generated", "tokens spent")):
            axis.set_xlabel(what)
            axis.set_ylabel(f"{dataset}: problems solved (validation)")
            axis.grid(alpha=0.3)
            axis.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts of problems
            axis.set_ylim(bottom=0)
            axis.set_xlim(left=0)
        axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
        most = budget([r for s in row for r in s.results])
        if most:  # programs axes end at the budget, not at the last solve
            axes[0].set_xlim(0, most)
            axes[2].set_xlim(0, most)
        seeds = len({r.get("seed", 0) for s in row for r in s.results})
        axes[0].set_title(f"{dataset}, {jobs} problems" + (f" × {seeds} seeds (mean; band: 95 % bootstrap over "
                          "problems)" if seeds > 1 else " (band: 95 % bootstrap over problems)"), fontsize=10)
        # linear only below the smallest spend drawn: no empty decades between 0 and the first job
        smallest = min((x for x in grids["tokens"] if x > 0), default=1.0)
        axes[1].set_xscale("symlog", linthresh=10 ** math.floor(math.log10(smallest)))
        axes[2].set_xlabel("programs generated")
        axes[2].set_ylabel("mean best validation pass rate")
        axes[2].set_ylim(0, 1.02)
        axes[2].grid(alpha=0.3)
        axes[2].legend(fontsize=7, loc="best")
    figure.suptitle("Anytime: problems solved against what was spent")
    figure.tight_layout()
    made.append(folder / "anytime.png")
    figure.savefig(made[-1], dpi=120)
    plt.close(figure)
    arities = sorted({r.get("branching_factor") for s in finished for r in s.results} - {None})
    if len(arities) > 1:
        jobs_by_family: dict[str, dict[int, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
        for summary in finished:
            for r in summary.results:
                jobs_by_family[config_label(r, arity="*")][r["branching_factor"]].append(r)
        figure, axis = plt.subplots(figsize=(7, 4.5))
        for family, by_arity in jobs_by_family.items():
            xs = sorted(by_arity)
            # problems solved, the mean over seeds when there are several
            counts = [sum(compare.solve_rates(compare.outcomes(by_arity[x])).values()) for x in xs]
            axis.plot(xs, counts, marker="o", label=family)
        axis.set_xscale("log", base=2)
        axis.xaxis.set_major_locator(FixedLocator(arities))  # the arities run (2, 4, 16 …), as plain numbers
        axis.xaxis.set_minor_locator(NullLocator())
        axis.set_xticklabels([str(a) for a in arities])
        axis.yaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylim(bottom=0)
        axis.set_xlabel("tree arity (branching factor)")
        axis.set_ylabel("problems solved (validation; mean over seeds)")
        axis.legend(fontsize=7)
        figure.tight_layout()
        made.append(folder / "solved_vs_arity.png")
        figure.savefig(made[-1], dpi=120)
        plt.close(figure)
    return made


def _without_dataset(summary: ConfigSummary) -> str:
    """A configuration's label with its dataset left out (the plot's row says it)."""
    dataset = str(summary.results[0].get("dataset"))
    return summary.config.replace(f" · {dataset} · ", " · ", 1)


def common_problems(summaries: list[ConfigSummary]) -> list[ConfigSummary]:
    """The summaries cut down to the problems every configuration finished: a fair comparison of a
    sweep some of whose configurations are still running (or were stopped)."""
    finished = [s for s in summaries if s.results]
    if not finished:
        return []
    # a configuration's table rows are one per dataset: it finished what all its rows finished
    finished_by: dict[str, set[tuple[Any, Any]]] = defaultdict(set)
    for summary in finished:
        finished_by[_without_dataset(summary)] |= {(r.get("dataset"), r.get("problem")) for r in summary.results}
    shared = set.intersection(*finished_by.values())
    cut = [ConfigSummary(s.config, [r for r in s.results if (r.get("dataset"), r.get("problem")) in shared])
           for s in finished]
    return [s for s in cut if s.results]  # a dataset no configuration finished in full has no row


def configurations(summaries: list[ConfigSummary]) -> dict[str, list[dict[str, Any]]]:
    """Each configuration's jobs over all its datasets and seeds, by its label without the dataset."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for summary in summaries:
        if summary.results:
            groups[_without_dataset(summary)].extend(summary.results)
    return dict(groups)


def statistics_markdown(summaries: list[ConfigSummary]) -> str:
    """Per configuration (and dataset): problems solved with a 95 % interval, over seeds."""
    columns = ["config", "problems", "seeds", "solved", "solved_ci_low", "solved_ci_high", "solved_at_least_once",
               "k", "pass_at_k", "mean_test_pass_rate", "mean_test_pass_rate_ci_low",
               "mean_test_pass_rate_ci_high"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for summary in summaries:
        if summary.results:
            row = summary.row() | compare.solve_stats(summary.results)
            lines.append("| " + " | ".join("" if row[c] is None else str(row[c]) for c in columns) + " |")
    return "\n".join(lines)


def uneven_note(groups: dict[str, list[dict[str, Any]]]) -> list[str]:
    """A warning when configurations finished different numbers of problems (a partial run): their
    counts are not comparable, the paired comparisons are."""
    finished = {name: len(compare.outcomes(results)) for name, results in groups.items()}
    if len(set(finished.values())) <= 1:
        return []
    counts = ", ".join(f"{count} ({name.split(' · ')[0]}…)" for name, count in sorted(finished.items()))
    return [f"Configurations finished different numbers of problems: {counts}. Their counts above are "
            "not comparable; the paired comparisons below use only the problems both finished.", ""]


STATISTICS_NOTE = (
    "solved: problems solved (with several seeds, the mean over seeds); its 95 % interval is Wilson's with "
    "one seed, else a bootstrap over problems of the per-problem solve rate. solved_at_least_once: by any "
    "seed. pass_at_k: the unbiased estimator (Chen et al. 2021) with k = the seeds every problem ran. "
    "Jobs stopped by an error are not outcomes.")


def write_report(folder: Path, redactor: Redactor | None = None, baseline: str | None = None) -> list[Path]:
    """report.md, report.csv, comparisons.csv and the plots; ValueError for a `baseline` that does
    not pick exactly one configuration (nothing is written then)."""
    summaries = summarize(folder, redactor)
    if not summaries:
        raise FileNotFoundError(f"no seidr jobs (programs.jsonl) under {folder}")
    groups = configurations(summaries)
    found = compare.comparisons(groups, baseline)  # first: a bad --baseline writes nothing
    rows = [s.row() | compare.solve_stats(s.results) for s in summaries]
    with (folder / "report.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    compare.write_comparisons(folder / "comparisons.csv", found)
    plots = plot(summaries, folder)
    problems = [f"- failed: {f}" for s in summaries for f in s.failed] + \
               [f"- unfinished: {f}" for s in summaries for f in s.unfinished]
    text = [f"# seidr report: {folder.name}", "", table_markdown(summaries), "",
            *(["## Problems solved, with 95 % intervals", "", statistics_markdown(summaries), "",
               STATISTICS_NOTE, "", *uneven_note(groups)]
              if groups else ["No job finished: nothing to count or compare.", ""]),
            *(["## Paired comparisons", "", compare.comparisons_markdown(found), ""] if found else []),
            *(["## Jobs that failed or did not finish", "", *problems, ""] if problems else []),
            *[f"![{p.stem}]({p.name})" for p in plots], "",
            *(["## Per problem", "", compare.per_problem_markdown(groups), ""] if groups else [])]
    (folder / "report.md").write_text("\n".join(text), encoding="utf-8")
    return [folder / "report.md", folder / "report.csv", folder / "comparisons.csv", *plots]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seidr.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--common", action="store_true",
                        help="also print the table over the problems every configuration finished")
    parser.add_argument("--baseline", metavar="TEXT",
                        help="compare every configuration with the one whose label contains TEXT "
                             "(default: every pair)")
    args = parser.parse_args(argv)
    # an entry point: the environment's secrets are gathered here, for the library to mask
    redactor = Redactor.from_sources(environ=os.environ)
    try:
        for path in write_report(args.folder, redactor, args.baseline):
            print(path)
    except (FileNotFoundError, ValueError) as error:
        print(f"seidr.report: error: {error}", file=sys.stderr)
        return 2
    summaries = summarize(args.folder, redactor)
    print(table_markdown(summaries))
    if args.common:
        shared = common_problems(summaries)
        problems = {(r.get("dataset"), r.get("problem")) for s in shared for r in s.results}
        print(f"\nthe {len(problems)} problems every configuration finished:\n")
        print(table_markdown(shared))
    return 0


if __name__ == "__main__":
    sys.exit(main())
