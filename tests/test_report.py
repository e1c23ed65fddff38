"""The report over a folder of jobs: numbers that match the jobs' results, plots that exist."""

from __future__ import annotations

import csv
import json

import pytest

from seidr import report
from seidr.report import anytime, config_label, main, never_started, summarize
from tests.servers.openai_server import OpenAIServer
from tests.test_cli import FIZZ_BUZZ_WRONG, run_main, seidr_reply


@pytest.fixture(scope="module")
def sweep(data_dir, tmp_path_factory):
    """Jobs of three configurations by a scripted model: seidr solves by repair, resample never
    solves, and one job is left unfinished."""
    out = tmp_path_factory.mktemp("sweep")
    with OpenAIServer(seidr_reply, model="m") as good, \
            OpenAIServer(lambda messages, body, index: FIZZ_BUZZ_WRONG, model="m") as bad:
        base = ["model=openai", "model.name=m", "model.api_key=k", "search.max_programs=12"]
        for problem in ("fizz-buzz", "gcd"):
            for label, server, extra in (("seidr", good, []), ("resample", bad, ["search=resample"])):
                proc = run_main(*base, f"model.base_url={server.base_url}", f"problem={problem}", *extra,
                                f"hydra.run.dir={out / label / problem}", data_dir=data_dir, output_root=out)
                assert proc.returncode == 0, proc.stderr
    unfinished = out / "seidr" / "luhn"
    unfinished.mkdir(parents=True)
    (unfinished / "programs.jsonl").write_text("")
    return out


def results(folder, label):
    return [json.loads(p.read_text()) for p in sorted((folder / label).rglob("result.json"))]


def test_configurations_that_differ_only_in_the_trees_shape_are_kept_apart(sweep):
    job = results(sweep, "seidr")[0]
    assert job["drafts_per_prompt"] == job["branching_factor"] == 2  # the paper's shape: no suffix
    usual = config_label(job)
    assert "drafts_per_prompt" not in usual
    more_drafts = config_label({**job, "drafts_per_prompt": 6})
    assert more_drafts != usual and more_drafts.endswith("drafts_per_prompt 6")
    assert config_label({**job, "drafts_per_prompt": 6}, arity="*") != config_label(job, arity="*")
    assert config_label({**job, "branching_factor": 4, "drafts_per_prompt": 4, "repairs_per_explanation": 4,
                         "beam_width": 4}, arity="*") == config_label(job, arity="*")
    # a second model for the explanations makes a configuration of its own
    explained = config_label({**job, "explain_model": "qwen2.5-coder-1.5b-instruct"})
    assert explained != usual and explained.endswith("explained by qwen2.5-coder-1.5b-instruct")
    assert config_label({**job, "explain_model": None}) == usual


def test_summary_matches_the_jobs(sweep):
    rows = {s.config.split(" · ")[0]: s.row() for s in summarize(sweep)}
    for label in ("seidr", "resample"):
        jobs = results(sweep, label)
        row = rows[label]
        assert row["jobs"] == 2 and row["programs"] == sum(r["programs"] for r in jobs)
        assert row["solved_validation"] == sum(r["solved"] for r in jobs)
        assert row["tokens"] == sum(r["prompt_tokens"] + r["completion_tokens"] for r in jobs)
    assert rows["resample"]["solved_validation"] == 0 and rows["resample"]["programs"] == 24
    assert rows["unfinished"]["unfinished"] == 1


def test_report_files_and_plots(sweep, capsys):
    assert main([str(sweep)]) == 0
    assert (sweep / "anytime.png").stat().st_size > 5_000
    text = (sweep / "report.md").read_text()
    assert "unfinished: seidr/luhn" in text and "![anytime](anytime.png)" in text
    with (sweep / "report.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {row["config"].split(" · ")[0] for row in rows} == {"seidr", "resample", "unfinished"}


def test_anytime_counts_problems_solved_within_each_spend():
    jobs = [{"solved": True, "programs": 5}, {"solved": False, "programs": 10}, {"solved": True, "programs": 2}]
    assert anytime(jobs, "programs") == ([2.0, 5.0], [1, 2])


def test_an_empty_folder_is_an_error(tmp_path):
    assert main([str(tmp_path)]) == 2


def test_pass_rate_curve_is_the_mean_best_so_far(tmp_path):
    from seidr.report import pass_rate_curve

    for name, rates in (("a", [0.2, 0.1, 0.6]), ("b", [0.5])):
        (tmp_path / name).mkdir()
        lines = [json.dumps({"id": i, "val_pass_rate": rate}) for i, rate in enumerate(rates)]
        # a killed job's torn last line is not a program
        (tmp_path / name / "programs.jsonl").write_text("\n".join(lines) + "\n" + '{"id": 9, "val_pa')
    assert pass_rate_curve([tmp_path / "a", tmp_path / "b"]) == pytest.approx([0.35, 0.35, 0.55])


def test_jobs_a_sweep_planned_but_never_started_are_listed(sweep, tmp_path):
    plan = [["problem=fizz-buzz"], ["problem=gcd"], ["problem=luhn"]]
    (tmp_path / "sweep_jobs.json").write_text(json.dumps(plan))
    for started in ("0_psb2_fizz-buzz", "2_psb2_luhn"):
        (tmp_path / started).mkdir()
        (tmp_path / started / "programs.jsonl").write_text("")
    (tmp_path / "1_psb2_gcd").mkdir()  # Hydra made its folder, but it stopped before searching
    assert never_started(tmp_path) == [(1, ["problem=gcd"])]
    assert never_started(sweep) == []  # no plan: nothing to compare with


# The report of a real `-m` sweep with a failed and a missing job is in tests/test_experiments.py,
# on the sweep its tests share.


def test_common_problems_compares_configurations_on_what_all_of_them_finished():
    def job(problem, solved):
        return {"dataset": "humaneval", "problem": problem, "solved": solved}

    wide = report.ConfigSummary("greedy", [job("HumanEval/0", True), job("HumanEval/1", False), job("HumanEval/2", True)])
    narrow = report.ConfigSummary("resample", [job("HumanEval/1", True), job("HumanEval/2", True)])
    unfinished = report.ConfigSummary("unfinished", unfinished=["somewhere"])
    shared = report.common_problems([wide, narrow, unfinished])
    assert [s.config for s in shared] == ["greedy", "resample"]
    assert [[r["problem"] for r in s.results] for s in shared] == [["HumanEval/1", "HumanEval/2"]] * 2


def test_common_problems_span_datasets_and_a_configuration_is_all_its_rows():
    """A configuration's rows (one per dataset) count together: its PSB2 row does not empty the
    HumanEval comparison, and a dataset it never reached drops out for all."""
    def job(dataset, problem):
        return {"dataset": dataset, "problem": problem, "solved": True}

    def rows(name, jobs):
        return [report.ConfigSummary(f"{name} · {dataset} · m", [j for j in jobs if j["dataset"] == dataset])
                for dataset in ("humaneval", "psb2") if any(j["dataset"] == dataset for j in jobs)]

    full = rows("resample", [job("humaneval", "HumanEval/0"), job("humaneval", "HumanEval/1"),
                             job("psb2", "gcd"), job("psb2", "luhn")])
    partial = rows("seidr", [job("humaneval", "HumanEval/0"), job("humaneval", "HumanEval/1"), job("psb2", "gcd")])
    shared = report.common_problems(full + partial)
    assert {s.config: [r["problem"] for r in s.results] for s in shared} == {
        "resample · humaneval · m": ["HumanEval/0", "HumanEval/1"], "resample · psb2 · m": ["gcd"],
        "seidr · humaneval · m": ["HumanEval/0", "HumanEval/1"], "seidr · psb2 · m": ["gcd"]}
    humaneval_only = rows("greedy", [job("humaneval", "HumanEval/0")])
    assert {s.config: len(s.results) for s in report.common_problems(full + humaneval_only)} == {
        "resample · humaneval · m": 1, "greedy · humaneval · m": 1}
