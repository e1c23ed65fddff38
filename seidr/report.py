"""`python -m seidr.report <sweep or benchmark folder>`: every job's result.json under a folder,
turned into the paper's view: report.md and report.csv (per configuration: problems solved on
validation and on test, mean test pass rate, programs, tokens, wall time) and PNG plots (anytime
curves: problems solved against programs spent and against tokens spent, one line per
configuration; solved problems against tree arity when the folder holds several). Jobs that
failed or never finished are listed, not dropped."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

    made = []
    finished = [s for s in summaries if s.results]
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
        for summary in row:
            name = _without_dataset(summary)
            for axis, key in zip(axes, ("programs", "tokens")):
                results = [dict(r, tokens=r.get("prompt_tokens", 0) + r.get("completion_tokens", 0))
                           for r in summary.results]
                x, y = anytime(results, key, until=budget(results) if key == "programs" else None)
                axis.step([0, *x], [0, *y], where="post", label=name, color=colour[name])
            curve = pass_rate_curve([folder / r["_folder"] for r in summary.results])
            axes[2].plot(range(1, len(curve) + 1), curve, label=name, color=colour[name])
        jobs = max(len(s.results) for s in row)
        for axis, what in zip(axes, ("programs generated", "tokens spent")):
            axis.set_xlabel(what)
            axis.set_ylabel(f"{dataset}: problems solved (validation)")
            axis.grid(alpha=0.3)
        most = budget([r for s in row for r in s.results])
        if most:  # programs axes end at the budget, not at the last solve
            axes[0].set_xlim(0, most)
            axes[2].set_xlim(0, most)
        axes[0].set_title(f"{dataset}, {jobs} problems", fontsize=10)
        axes[1].set_xscale("symlog")
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
        by_family: dict[str, dict[int, int]] = defaultdict(dict)
        for summary in finished:
            for r in summary.results:
                family = config_label(r, arity="*")
                by_family[family][r["branching_factor"]] = by_family[family].get(r["branching_factor"], 0) + bool(
                    r["solved"])
        figure, axis = plt.subplots(figsize=(7, 4.5))
        for family, counts in by_family.items():
            xs = sorted(counts)
            axis.plot(xs, [counts[x] for x in xs], marker="o", label=family)
        axis.set_xscale("log")
        axis.set_xlabel("tree arity (branching factor)")
        axis.set_ylabel("problems solved (validation)")
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


def write_report(folder: Path, redactor: Redactor | None = None) -> list[Path]:
    summaries = summarize(folder, redactor)
    if not summaries:
        raise FileNotFoundError(f"no seidr jobs (programs.jsonl) under {folder}")
    rows = [s.row() for s in summaries]
    with (folder / "report.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plots = plot(summaries, folder)
    problems = [f"- failed: {f}" for s in summaries for f in s.failed] + \
               [f"- unfinished: {f}" for s in summaries for f in s.unfinished]
    text = [f"# seidr report: {folder.name}", "", table_markdown(summaries), "",
            *(["## Jobs that failed or did not finish", "", *problems, ""] if problems else []),
            *[f"![{p.stem}]({p.name})" for p in plots], ""]
    (folder / "report.md").write_text("\n".join(text), encoding="utf-8")
    return [folder / "report.md", folder / "report.csv", *plots]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seidr.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--common", action="store_true",
                        help="also print the table over the problems every configuration finished")
    args = parser.parse_args(argv)
    # an entry point: the environment's secrets are gathered here, for the library to mask
    redactor = Redactor.from_sources(environ=os.environ)
    try:
        for path in write_report(args.folder, redactor):
            print(path)
    except FileNotFoundError as error:
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
