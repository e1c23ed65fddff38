"""The report over a folder of jobs: numbers that match the jobs' results, plots that exist."""

from __future__ import annotations

import csv
import json

import pytest

from seidr.report import anytime, main, summarize
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
