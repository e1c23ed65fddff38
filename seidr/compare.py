"""Configurations compared as the evidence allows: per-configuration solve rates with intervals,
and paired comparisons over the problems both configurations finished, seeds as an axis.

A configuration's outcome on a problem is its solve rate over the seeds run there (one seed: 0
or 1). Comparisons pair by problem and, within a problem, by seed (only seeds both sides ran)."""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from seidr import stats

Problem = tuple[str, str]  # (dataset, problem)
Outcomes = dict[Problem, dict[int, bool]]  # problem -> seed -> solved

COMPARISON_COLUMNS = ["config", "baseline", "problems", "only_config", "only_baseline", "difference", "ci_low",
                      "ci_high", "p_value", "significant"]


def outcomes(results: list[dict[str, Any]]) -> Outcomes:
    """Who solved what, per seed. A job stopped by an error says nothing about the configuration
    (it is listed as failed), so it is no outcome here."""
    table: Outcomes = defaultdict(dict)
    for result in results:
        if result.get("stopped") == "error":
            continue
        key = (str(result.get("dataset")), str(result.get("problem")))
        table[key][int(result.get("seed", 0))] = bool(result["solved"])
    return dict(table)


def solve_rates(table: Outcomes) -> dict[Problem, float]:
    return {problem: sum(seeds.values()) / len(seeds) for problem, seeds in table.items()}


def solve_stats(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The report's per-configuration figures: problems solved (the mean over seeds of the count)
    with a 95 % interval (Wilson with one seed per problem; a bootstrap over problems of the
    per-problem solve rate with several), solved at least once over the seeds, pass@k for k
    the seeds every problem ran, and mean test pass rate with a bootstrap interval over problems."""
    table = outcomes(results)
    rates = solve_rates(table)
    problems = len(table)
    seeds = sorted({seed for runs in table.values() for seed in runs})
    attempts = min((len(runs) for runs in table.values()), default=0)
    row: dict[str, Any] = {"problems": problems, "seeds": " ".join(map(str, seeds)), "solved": None,
                           "solved_ci_low": None, "solved_ci_high": None, "solved_at_least_once": None,
                           "pass_at_k": None, "k": None,
                           "mean_test_pass_rate_ci_low": None, "mean_test_pass_rate_ci_high": None}
    if not problems:
        return row
    solved = sum(rates.values())
    if max(len(runs) for runs in table.values()) == 1:
        interval = stats.proportion_interval(round(solved), problems)
    else:
        interval = stats.mean_interval(list(rates.values()))
    row.update(solved=_round(solved, 2), solved_at_least_once=sum(any(runs.values()) for runs in table.values()))
    if interval is not None:
        row.update(solved_ci_low=_round(interval[0] * problems, 2),
                   solved_ci_high=_round(interval[1] * problems, 2))
    if attempts >= 2:
        row.update(k=attempts, pass_at_k=_round(sum(stats.pass_at_k(len(runs), sum(runs.values()), attempts)
                                                    for runs in table.values()) / problems, 4))
    test_rates = _per_problem_mean(results, "test_pass_rate")
    band = stats.mean_interval(list(test_rates.values()))
    if band is not None:
        row.update(mean_test_pass_rate_ci_low=_round(band[0], 4), mean_test_pass_rate_ci_high=_round(band[1], 4))
    return row


def _per_problem_mean(results: list[dict[str, Any]], key: str) -> dict[Problem, float]:
    values: dict[Problem, list[float]] = defaultdict(list)
    for result in results:
        if result.get("stopped") != "error" and result.get(key) is not None:
            values[(str(result.get("dataset")), str(result.get("problem")))].append(float(result[key]))
    return {problem: sum(v) / len(v) for problem, v in values.items()}


def _round(value: float, digits: int) -> float:
    return round(float(value), digits)


@dataclass
class Comparison:
    """One configuration against a baseline over the problems both finished (columns of comparisons.csv)."""

    config: str
    baseline: str
    problems: int
    only_config: int  # problems where the configuration's solve rate is higher
    only_baseline: int
    difference: float | None  # mean per-problem solve-rate difference, config minus baseline; None: no pairs
    ci_low: float | None
    ci_high: float | None
    p_value: float
    significant: bool
    one_seed: bool  # every pair is one job each: the test is the exact McNemar test

    def csv_row(self) -> dict[str, Any]:
        row = asdict(self)
        return {column: "" if row[column] is None else row[column] for column in COMPARISON_COLUMNS}


def compare(config: str, config_outcomes: Outcomes, baseline: str, baseline_outcomes: Outcomes) -> Comparison:
    """Paired over the problems both sides finished, and within a problem over the seeds both ran.
    p: exact sign test on the problems where one side's rate is higher (the exact McNemar test with
    one seed); interval: percentile bootstrap over problems of the mean rate difference."""
    differences, one_seed = [], True
    for problem in sorted(config_outcomes.keys() & baseline_outcomes.keys()):
        seeds = config_outcomes[problem].keys() & baseline_outcomes[problem].keys()
        if not seeds:
            continue
        one_seed &= len(seeds) == 1
        mine = sum(config_outcomes[problem][s] for s in seeds) / len(seeds)
        theirs = sum(baseline_outcomes[problem][s] for s in seeds) / len(seeds)
        differences.append(mine - theirs)
    higher = sum(d > 0 for d in differences)
    lower = sum(d < 0 for d in differences)
    interval = stats.mean_interval(differences)
    p_value = stats.sign_test(higher, lower)
    excludes_zero = interval is not None and (interval[0] > 0 or interval[1] < 0)
    return Comparison(config, baseline, len(differences), higher, lower,
                      _round(sum(differences) / len(differences), 4) if differences else None,
                      None if interval is None else _round(interval[0], 4),
                      None if interval is None else _round(interval[1], 4),
                      float(f"{p_value:.4g}"), p_value < stats.ALPHA and excludes_zero, one_seed)


def pick_baseline(names: list[str], text: str) -> str:
    """The one configuration whose label contains `text`. When it matches a configuration and
    variants of it (labels that extend it, as `resample … · dedupe` extends `resample …`), the plain
    one. Anything else is a ValueError naming the candidates."""
    candidates = [name for name in names if text in name]
    if len(candidates) == 1:
        return candidates[0]
    plain = [name for name in candidates if all(other.startswith(name) for other in candidates)]
    if len(plain) == 1:
        return plain[0]
    listed = "; ".join(candidates or names)
    which = "matches several configurations" if candidates else "matches no configuration"
    raise ValueError(f"--baseline {text!r} {which}: {listed}")


def comparisons(groups: dict[str, list[dict[str, Any]]], baseline: str | None = None) -> list[Comparison]:
    """Every configuration against `baseline` (a substring of one label), or every pair."""
    tables = {name: outcomes(results) for name, results in groups.items()}
    names = sorted(tables)
    if baseline is not None:
        chosen = pick_baseline(names, baseline)
        pairs = [(name, chosen) for name in names if name != chosen]
    else:
        pairs = [(names[j], names[i]) for i in range(len(names)) for j in range(i + 1, len(names))]
    return [compare(config, tables[config], base, tables[base]) for config, base in pairs]


def write_comparisons(path: Path, found: list[Comparison]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=COMPARISON_COLUMNS)
        writer.writeheader()
        writer.writerows(c.csv_row() for c in found)
    return path


def in_words(comparison: Comparison) -> str:
    """'solves 3 more of 40, p = 0.25: not distinguishable', and for a difference the data cannot
    separate, roughly how many problems would."""
    if comparison.difference is None:
        return "no problem finished by both: nothing to compare"
    net = comparison.difference * comparison.problems
    amount = f"{abs(net):.3g}"
    verb = "the same number" if net == 0 else f"{amount} {'more' if net > 0 else 'fewer'}"
    seeds = "" if comparison.one_seed else " (mean over seeds)"
    text = f"solves {verb} of {comparison.problems}{seeds}, p = {comparison.p_value:.2g}"
    if comparison.significant:
        return f"{text}: a real difference"
    text += ": not distinguishable"
    if comparison.only_config != comparison.only_baseline:
        needed = stats.problems_to_separate(comparison.problems, comparison.only_config, comparison.only_baseline)
        text += (f" (about {needed} problems with differences like these would separate them)" if needed
                 else " (not within 100 times as many problems)")
    return text


def comparisons_markdown(found: list[Comparison]) -> str:
    test = ("exact McNemar test" if all(c.one_seed for c in found)
            else "exact sign test over problems (the exact McNemar test where a problem has one seed)")
    lines = [f"Paired over the problems both finished; p from the {test}; interval: 95 % bootstrap over "
             "problems of the mean per-problem solve-rate difference.", "",
             "| config | baseline | problems | higher on | lower on | difference [95 % CI] | in words |",
             "|---|---|---|---|---|---|---|"]
    for c in found:
        interval = "" if c.ci_low is None else f" [{c.ci_low:+.3f}, {c.ci_high:+.3f}]"
        difference = "" if c.difference is None else f"{c.difference:+.3f}{interval}"
        lines.append(f"| {c.config} | {c.baseline} | {c.problems} | {c.only_config} | {c.only_baseline} | "
                     f"{difference} | {in_words(c)} |")
    return "\n".join(lines)


def per_problem_markdown(groups: dict[str, list[dict[str, Any]]]) -> str:
    """Which problems each configuration solved: ✓ / · with one seed, solved/run with several."""
    tables = {name: outcomes(results) for name, results in groups.items()}
    names = sorted(tables)
    problems = sorted({problem for table in tables.values() for problem in table})
    legend = [f"- C{index}: {name}" for index, name in enumerate(names, 1)]
    lines = [*legend, "", "| problem | " + " | ".join(f"C{i}" for i in range(1, len(names) + 1)) + " |",
             "|---|" + "---|" * len(names)]
    for problem in problems:
        cells = []
        for name in names:
            runs = tables[name].get(problem)
            if not runs:
                cells.append("")  # not finished
            elif len(runs) == 1:
                cells.append("✓" if next(iter(runs.values())) else "·")
            else:
                cells.append(f"{sum(runs.values())}/{len(runs)}")
        lines.append(f"| {problem[0]}:{problem[1]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
