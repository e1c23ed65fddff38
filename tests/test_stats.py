"""The report's statistics against cases worked by hand: intervals, pass@k, paired tests over
problems and seeds, and the files `python -m seidr.report` writes from them."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from seidr import compare, stats
from seidr.report import anytime_matrix, main

Z = 1.959963984540054


def job(problem, solved, seed=0, strategy="resample", dataset="humaneval", **extra):
    return {"strategy": strategy, "selection": "-", "dataset": dataset, "model": "m", "language": "python",
            "branching_factor": 2, "max_programs": 10, "problem": problem, "seed": seed, "solved": solved,
            "programs": 3 if solved else 10, "test_pass_rate": 1.0 if solved else 0.25,
            "prompt_tokens": 100, "completion_tokens": 50, **extra}


def jobs(strategy, solved_by_problem, seeds=(0,), **extra):
    """solved_by_problem: problem number -> the seeds that solved it."""
    return [job(f"P/{n}", seed in solvers, seed, strategy, **extra)
            for n, solvers in solved_by_problem.items() for seed in seeds]


def test_wilson_interval_matches_the_formula():
    low, high = stats.proportion_interval(20, 40)
    half = Z / (1 + Z**2 / 40) * np.sqrt(0.25 / 40 + Z**2 / (4 * 40**2))
    assert (low, high) == pytest.approx((0.5 - half, 0.5 + half))
    assert (round(low, 3), round(high, 3)) == (0.352, 0.648)


def test_pass_at_k_is_chen_et_als_estimator():
    assert stats.pass_at_k(3, 1, 1) == pytest.approx(1 / 3)
    assert stats.pass_at_k(3, 1, 2) == pytest.approx(1 - 1 / 3)  # 1 - C(2,2)/C(3,2)
    assert stats.pass_at_k(5, 2, 3) == pytest.approx(1 - 1 / 10)  # 1 - C(3,3)/C(5,3)
    assert stats.pass_at_k(3, 0, 3) == 0.0 and stats.pass_at_k(3, 3, 1) == 1.0
    with pytest.raises(ValueError):
        stats.pass_at_k(2, 1, 3)


def test_three_against_none_of_forty_is_not_distinguishable():
    config = jobs("seidr", {n: {0} if n < 13 else set() for n in range(40)})
    baseline = jobs("resample", {n: {0} if n < 10 else set() for n in range(40)})
    found = compare.compare("seidr", compare.outcomes(config), "resample", compare.outcomes(baseline))
    assert (found.problems, found.only_config, found.only_baseline) == (40, 3, 0)
    assert found.p_value == pytest.approx(0.25) and found.difference == pytest.approx(3 / 40)
    assert found.ci_low == 0 < found.ci_high  # (37/40)^40 ≈ 4 % of resamples hold no solve: 0 is inside
    assert not found.significant
    words = compare.in_words(found)
    assert words.startswith("solves 3 more of 40, p = 0.25: not distinguishable")
    assert "about" in words and "problems" in words


def test_fifteen_against_none_of_forty_is_real():
    config = jobs("seidr", {n: {0} if n < 15 else set() for n in range(40)})
    baseline = jobs("resample", {n: set() for n in range(40)})
    found = compare.compare("seidr", compare.outcomes(config), "resample", compare.outcomes(baseline))
    assert found.p_value == pytest.approx(2 * 0.5**15, rel=1e-3)  # about 6e-5
    assert found.ci_low > 0 and found.significant
    assert compare.in_words(found).endswith("a real difference")


def test_identical_configurations_over_three_seeds_differ_by_nothing():
    solvers = {0: {0, 1, 2}, 1: {1}, 2: set(), 3: {0, 2}, 4: {2}}
    one = compare.outcomes(jobs("seidr", solvers, seeds=(0, 1, 2)))
    two = compare.outcomes(jobs("resample", solvers, seeds=(0, 1, 2)))
    found = compare.compare("seidr", one, "resample", two)
    assert found.problems == 5  # each problem once, whatever the seeds
    assert found.difference == 0 and found.ci_low <= 0 <= found.ci_high
    assert found.p_value == 1.0 and not found.significant and not found.one_seed


def test_several_seeds_pair_by_problem_and_by_the_seeds_both_ran():
    # the configuration solves problems 0-4 on every seed; the baseline on seed 0 only
    config = compare.outcomes(jobs("seidr", {n: {0, 1, 2} for n in range(5)}, seeds=(0, 1, 2)))
    baseline = compare.outcomes(jobs("resample", {n: {0} for n in range(5)}, seeds=(0, 1, 2)))
    found = compare.compare("seidr", config, "resample", baseline)
    assert (found.only_config, found.only_baseline) == (5, 0)
    assert found.difference == pytest.approx(2 / 3, abs=1e-4)
    assert found.p_value == pytest.approx(0.0625)  # sign test: 5 of 5, two-sided
    # where the baseline only ran seed 0, the comparison is on seed 0 alone: a tie
    partial = compare.outcomes([j for j in jobs("resample", {n: {0} for n in range(5)}, seeds=(0, 1, 2))
                                if j["seed"] == 0])
    assert compare.compare("seidr", config, "resample", partial).difference == 0


def test_solve_statistics_over_seeds():
    results = jobs("seidr", {0: {0, 1, 2}, 1: {0}, 2: set()}, seeds=(0, 1, 2))
    row = compare.solve_stats(results)
    assert row["problems"] == 3 and row["seeds"] == "0 1 2"
    assert row["solved"] == pytest.approx(4 / 3, abs=0.01)
    assert row["solved_at_least_once"] == 2
    assert row["k"] == 3 and row["pass_at_k"] == pytest.approx(2 / 3, abs=1e-4)
    assert row["solved_ci_low"] <= row["solved"] <= row["solved_ci_high"] <= 3
    one_seed = compare.solve_stats(jobs("seidr", {n: {0} if n < 20 else set() for n in range(40)}))
    # 40 × Wilson's (0.352, 0.648)
    assert (one_seed["solved_ci_low"], one_seed["solved_ci_high"]) == pytest.approx((14.08, 25.92), abs=0.005)
    assert one_seed["pass_at_k"] is None  # one attempt per problem: no pass@k beyond the solve rate
    # a job stopped by an error is no outcome
    failed = compare.solve_stats([job("P/0", False, stopped="error"), job("P/1", True)])
    assert failed["problems"] == 1 and failed["solved"] == 1


def test_the_baseline_is_one_configuration_or_an_error_naming_the_candidates():
    names = ["adaptive · -", "resample · -", "resample · - · dedupe", "seidr · beam", "seidr · lexicase"]
    assert compare.pick_baseline(names, "resample") == "resample · -"  # the plain one of a family
    assert compare.pick_baseline(names, "dedupe") == "resample · - · dedupe"
    with pytest.raises(ValueError, match="several.*seidr · beam; seidr · lexicase"):
        compare.pick_baseline(names, "seidr")
    with pytest.raises(ValueError, match="no configuration.*adaptive"):
        compare.pick_baseline(names, "greedy")


def write_jobs(folder, results):
    for index, result in enumerate(results):
        run = folder / f"{result['strategy']}-{result['seed']}-{index}"
        run.mkdir(parents=True)
        # the report counts a solve only when its best program is the one programs.jsonl records
        code = f"print({index})"
        (run / "programs.jsonl").write_text(json.dumps({"id": 0, "val_pass_rate": 0.5, "code": code}) + "\n")
        (run / "result.json").write_text(json.dumps({**result, "best_program_id": 0, "best_program": code}))


def test_report_writes_comparisons_with_the_agreed_columns(tmp_path, capsys):
    solvers = {n: {0, 1} if n < 6 else set() for n in range(10)}
    write_jobs(tmp_path, jobs("seidr", solvers, seeds=(0, 1)) + jobs("resample", {n: set() for n in range(10)},
                                                                     seeds=(0, 1)))
    assert main([str(tmp_path), "--baseline", "resample"]) == 0
    with (tmp_path / "comparisons.csv").open() as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == ["config", "baseline", "problems", "only_config", "only_baseline", "difference",
                                 "ci_low", "ci_high", "p_value", "significant"]
    assert len(rows) == 1 and rows[0]["config"].startswith("seidr") and rows[0]["baseline"].startswith("resample")
    assert (rows[0]["problems"], rows[0]["only_config"], rows[0]["only_baseline"]) == ("10", "6", "0")
    assert float(rows[0]["p_value"]) == pytest.approx(2 * 0.5**6) and rows[0]["significant"] == "True"
    text = (tmp_path / "report.md").read_text()
    assert "solves 6 more of 10 (mean over seeds)" in text and "| humaneval:P/0 |" in text and "2/2" in text
    with (tmp_path / "report.csv").open() as handle:
        table = {row["config"].split(" · ")[0]: row for row in csv.DictReader(handle)}
    assert table["seidr"]["solved"] == "6.0" and table["seidr"]["solved_at_least_once"] == "6"
    # a baseline that names no single configuration: exit 2 naming the candidates
    assert main([str(tmp_path), "--baseline", "e"]) == 2
    assert "several configurations" in capsys.readouterr().err


def test_a_folder_where_no_job_finished_reports_instead_of_crashing(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "programs.jsonl").write_text("")
    assert main([str(tmp_path)]) == 0
    assert "No job finished" in (tmp_path / "report.md").read_text()


def test_anytime_matrix_counts_each_problems_share_of_seeds():
    results = [job("P/0", True, 0, programs=2), job("P/0", True, 1, programs=5), job("P/1", False, 0),
               job("P/1", True, 1, programs=9)]
    matrix = anytime_matrix(results, "programs", np.arange(0, 11, dtype=float))
    assert matrix.sum(axis=0).tolist() == [0, 0, .5, .5, .5, 1, 1, 1, 1, 1.5, 1.5]
    band = stats.mean_band(matrix)
    assert band is not None and np.all(band[0] <= matrix.mean(axis=0)) and np.all(matrix.mean(axis=0) <= band[1])


def test_sign_test_needs_more_problems_for_a_small_difference():
    # all-one-way differences need 6 (p = 2/64; 5 give 0.0625): 3/40 of 74 problems rounds to 6
    assert stats.problems_to_separate(40, 3, 0) == 74
    assert stats.problems_to_separate(40, 2, 2) is None


def test_the_token_axis_runs_to_the_most_spent_even_with_nothing_solved():
    from seidr.report import _token_grid

    unsolved = [dict(job("P/0", False), tokens=1200), dict(job("P/1", False), tokens=800)]
    assert _token_grid(unsolved).tolist() == [0.0, 1200.0]
    solved = [dict(job("P/0", True), tokens=300), *unsolved]
    assert _token_grid(solved).tolist() == [0.0, 300.0, 1200.0]


def test_the_label_never_names_the_seed_and_uneven_progress_is_flagged(tmp_path):
    from seidr.report import config_label

    assert config_label(job("P/0", True, seed=0)) == config_label(job("P/0", True, seed=7))
    write_jobs(tmp_path, jobs("seidr", {0: {0}, 1: set(), 2: {0}}) + jobs("resample", {0: {0}}))
    assert main([str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "finished different numbers of problems: 1 (resample…), 3 (seidr…)" in text
    assert "solves the same number of 1" in text  # paired on the one problem both finished


def test_configurations_with_no_problem_in_common_have_no_difference():
    found = compare.compare("seidr", compare.outcomes([job("P/0", True)]), "resample",
                            compare.outcomes([job("P/1", False)]))
    assert found.problems == 0 and found.difference is None and found.ci_low is None
    assert found.csv_row()["difference"] == "" and not found.significant
    assert compare.in_words(found) == "no problem finished by both: nothing to compare"
