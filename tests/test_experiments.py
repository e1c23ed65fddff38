"""experiments/: each paper table is one `-m` command that expands to exactly the table's jobs."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from hydra_plugins.seidr_grids_sweeper import GridsSweeper
from seidr.config import CONFIG_DIR, REPO_ROOT, register_resolvers
from seidr.report import main as report_main
from seidr.report import never_started, summarize
from tests.servers.openai_server import OpenAIServer
from tests.test_cli import run_main, seidr_reply

TABLES = {  # experiment -> its table in data/paper_tables
    "psb2_gpt3_5": "psb2__gpt3_5__experiments_psb2_gpt3_5_run_1_offset_111000_no_lexicase_mp100_bf_2_4_16_1_10_100.csv",
    "psb2_llama3_lexicase": "psb2__llama3_8b__experiments_psb2_llama3_8b_run_1_offset_1310000_lexicase_mp100_bf_custom.csv",
    "humaneval_cpp_gpt3_5": "humaneval__gpt3_5__experiments_humaneval_gpt3_5_run_1_offset_115000_no_lexicase_cpp_mp100_bf_2_4_16_1_10_100.csv",
    "humaneval_cpp_llama3": "humaneval__llama3_8b__experiments_humaneval_llama3_8b_run_1_offset_135000_no_lexicase_cpp_mp100_bf_2_4_16_1_10_100.csv",
    "psb2_gpt3_5_lexicase": "psb2_gpt-3.5-turbo_offset_15000.csv",
    "gecco23": "gecco_era__experiments_GECCO23.csv",
    "gecco_mp100": "gecco_era__experiments_mp100_bf2_4_16.csv",
}
# What identifies a row (the search keys) and what the original used only for bookkeeping:
# task_id/offset/run number jobs, log is a log level, batch_size is completions per API request.
BOOKKEEPING = {"", "task_id", "offset", "run", "log", "batch_size"}
LANGUAGES = {"cpp": "C++", "python": "Python"}
# how often a job's whole config is composed and checked against every column (composing takes
# ~0.2 s; the keys that vary between rows are checked on every job without it)
SAMPLE_EVERY = 37


def table_rows(data_dir: Path, name: str) -> list[dict[str, str]]:
    with open(data_dir / "paper_tables" / TABLES[name], newline="") as lines:
        return [{k: v for k, v in row.items() if k not in BOOKKEEPING} for row in csv.DictReader(lines)]


def row_of(cfg) -> dict[str, str]:
    """A job's config in the table's columns."""
    search = cfg.search
    return {
        "problem": cfg.problem, "language": LANGUAGES[cfg.language], "dataset": cfg.dataset.name,
        "model_name": cfg.model.name, "branching_factor": str(search.branching_factor),
        "max_programs": str(search.max_programs), "drafts_per_prompt": str(search.drafts_per_prompt),
        "explanations_per_program": str(search.explanations_per_program),
        "repairs_per_explanation": str(search.repairs_per_explanation), "beam_width": str(search.beam_width),
        "lexicase_selection": str(cfg.selection._target_.endswith("LexicaseSelection")),
        "valid_examples": str(search.valid_examples), "debug_prompt_id": str(search.debug_prompt_id),
    }


def varying(overrides: list[str], defaults: dict[str, str]) -> dict[str, str]:
    """The columns a job's own overrides set (the rest comes from the experiment's config)."""
    values = dict(o.split("=", 1) for o in overrides)
    row = dict(defaults)
    row["problem"] = values.get("problem", row["problem"])
    if "language" in values:
        row["language"] = LANGUAGES[values["language"]]
    if "search.branching_factor" in values:
        bf = values["search.branching_factor"]
        for column in ("branching_factor", "drafts_per_prompt", "repairs_per_explanation", "beam_width"):
            row[column] = bf
    if "selection" in values:
        row["lexicase_selection"] = str(values["selection"] == "lexicase")
    row["debug_prompt_id"] = values.get("search.debug_prompt_id", row["debug_prompt_id"])
    return row


@pytest.fixture(scope="module")
def composer():
    register_resolvers()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        yield compose


@pytest.mark.parametrize("experiment", sorted(TABLES))
def test_experiment_expands_to_its_table_row_for_row(experiment, composer, data_dir):
    rows = table_rows(data_dir, experiment)
    base = composer("config", overrides=[f"+experiments={experiment}"], return_hydra_config=True)
    sweeper = base.hydra.sweeper
    jobs = GridsSweeper(grids=sweeper.grids, params=sweeper.params).job_overrides([])
    assert len(jobs) == len(rows)
    defaults = row_of(base)
    for index, (overrides, row) in enumerate(zip(jobs, rows)):
        expected = {column: row[column] for column in row}
        assert {k: v for k, v in varying(overrides, defaults).items() if k in row} == expected, (index, overrides)
        if index % SAMPLE_EVERY == 0 or index == len(jobs) - 1:
            job = composer("config", overrides=[f"+experiments={experiment}", *overrides])
            assert {k: v for k, v in row_of(job).items() if k in row} == expected, (index, overrides)


def test_every_table_has_an_experiment(data_dir):
    assert sorted(p.name for p in (data_dir / "paper_tables").glob("*.csv")) == sorted(TABLES.values())
    assert sorted(p.stem for p in (REPO_ROOT / "experiments").glob("*.yaml")) == sorted(TABLES)


def test_command_line_narrows_an_experiment_and_swaps_its_model(composer):
    base = composer("config", overrides=["+experiments=psb2_gpt3_5_lexicase", "model=local"],
                    return_hydra_config=True)
    assert base.model.backend._target_.endswith("LocalBackend")
    sweeper = GridsSweeper(grids=base.hydra.sweeper.grids, params=base.hydra.sweeper.params)
    jobs = sweeper.job_overrides(["problem=gcd", "language=python"])
    # lexicase at 4 arities, beam at 6: one problem, one language left of each grid
    assert [dict(o.split("=", 1) for o in job)["selection"] for job in jobs] == ["lexicase"] * 4 + ["beam"] * 6
    assert all("problem=gcd" in job and "language=python" in job for job in jobs)


@pytest.mark.slow
def test_an_experiment_runs_through_main_with_the_embedded_model(data_dir, tmp_path):
    proc = run_main("-m", "+experiments=gecco_mp100", "model=local", "problem=fizz-buzz", "language=python",
                    "search.branching_factor=2,4", "search.max_programs=1", data_dir=data_dir,
                    output_root=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # one folder for the embedded model at this budget; a job's folder is its row of the table
    results = sorted((tmp_path / "experiments" / "gecco_mp100" / "qwen2.5-coder-0.5b-instruct_budget1")
                     .glob("*/result.json"))
    assert [path.parent.name for path in results] == ["51_psb2_fizz-buzz_seed0", "52_psb2_fizz-buzz_seed0"]
    for path in results:
        result = json.loads(path.read_text())
        assert result["problem"] == "fizz-buzz" and result["programs"] == 1
        assert result["debug_prompt_id"] == 0  # gecco_mp100 instructs with template 0


@pytest.fixture(scope="module")
def grid_sweep(data_dir, tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """One real `-m` sweep through the grids sweeper by a scripted model, whose first job names no
    problem: main.py's run and the sweep folder. The report's test of a sweep uses it too."""
    out = tmp_path_factory.mktemp("grid")
    with OpenAIServer(seidr_reply, model="m") as server:
        proc = run_main("-m", "+experiments=gecco_mp100", "model=openai", "model.name=m", "model.api_key=k",
                        f"model.base_url={server.base_url}", "problem=nope,fizz-buzz,gcd", "language=python",
                        "search.branching_factor=2", "search.max_programs=6", data_dir=data_dir,
                        output_root=out)
    return proc, out / "experiments" / "gecco_mp100" / "m_budget6"


def test_a_bad_job_fails_alone_and_the_sweep_says_so(grid_sweep):
    proc, folder = grid_sweep
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "unknown PSB2 problem 'nope'" in proc.stderr and "1 of 3 jobs failed" in proc.stderr
    # the jobs after the bad one still ran, each in the folder of its row of the full table
    # (fizz-buzz is problem 8 of 25, gcd 10; python is the second language, arity 2 the first)
    assert [p.parent.name for p in sorted(folder.glob("*/result.json"))] == ["51_psb2_fizz-buzz_seed0",
                                                                              "63_psb2_gcd_seed0"]


def test_the_report_of_a_sweep_names_its_jobs_without_programs(grid_sweep, tmp_path):
    """The failed job, and a finished one whose folder is then deleted, are named in the report."""
    sweep_dir = Path(shutil.copytree(grid_sweep[1], tmp_path / "sweep"))  # the fixture's stays whole
    jobs = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/result.json"))]
    assert [job["problem"] for job in jobs] == ["fizz-buzz", "gcd"]
    assert all(job["debug_prompt_id"] == 0 for job in jobs)  # the table's template instruct
    shutil.rmtree(sweep_dir / "63_psb2_gcd_seed0")
    assert report_main([str(sweep_dir)]) == 0
    plan = json.loads((sweep_dir / "sweep_jobs.json").read_text())
    assert "problem=nope" in plan[0] and "problem=gcd" in plan[2] and "experiment_row=63" in plan[2]
    [(nope_row, _), (gcd_row, _)] = never_started(sweep_dir)
    assert never_started(sweep_dir) == [(nope_row, plan[0]), (63, plan[2])]
    assert str(nope_row).startswith("x")  # no row of the table holds problem nope
    text = (sweep_dir / "report.md").read_text()
    assert f"job {nope_row} (" in text and "job 63 (" in text and "problem=gcd" in text and "never started" in text
    [row] = [s.row() for s in summarize(sweep_dir) if s.results]
    assert row["jobs"] == 1 and row["programs"] == jobs[0]["programs"] and "debug prompt 0" in row["config"]


def test_a_slice_runs_each_job_in_its_row_of_the_full_table(composer):
    """Narrowing never renumbers: a slice's jobs are the full table's rows, so the full run
    resumes them, and a job the table lists twice (gecco23's arity 1, template 0) takes both rows."""
    base = composer("config", overrides=["+experiments=gecco23"], return_hydra_config=True)
    sweeper = GridsSweeper(grids=base.hydra.sweeper.grids, params=base.hydra.sweeper.params)
    table = sweeper.job_overrides([])
    slice_jobs = sweeper.job_overrides(["problem=gcd", "language=python", "model=local", "seed=0,1"])
    rows = sweeper.rows(slice_jobs)
    keys = sweeper.table_keys()
    for job, row in zip(slice_jobs, rows):
        assert sorted(o for o in job if o.split("=", 1)[0] in keys) == sorted(table[int(row)])
    twice = [row for job, row in zip(slice_jobs, rows)
             if "search.branching_factor=1" in job and "search.debug_prompt_id=0" in job and "seed=0" in job]
    assert len(twice) == 2 and len(set(twice)) == 2
    # a value no row has is not a row: it gets a folder of its own, never a table row's
    off_table = sweeper.rows(sweeper.job_overrides(["problem=gcd", "language=python",
                                                    "search.branching_factor=3", "search.debug_prompt_id=0"]))
    assert len(off_table) == 2 and all(row.startswith("x") for row in off_table)  # one per grid
    assert len(set(off_table)) == 2


@pytest.mark.parametrize("row", [63, 9999])
def test_one_row_of_a_table_runs_alone_in_its_folder(row, data_dir, tmp_path):
    """`hydra.sweeper.row=N` runs the table's job N exactly as the whole sweep would (its folder,
    its overrides) and says which row it is; a row the table does not have is one line, exit 2."""
    with OpenAIServer(seidr_reply, model="m") as server:
        proc = run_main("-m", "+experiments=gecco_mp100", f"hydra.sweeper.row={row}", "model=openai",
                        "model.name=m", "model.api_key=k", f"model.base_url={server.base_url}",
                        "search.max_programs=2", data_dir=data_dir, output_root=tmp_path)
    folder = tmp_path / "experiments" / "gecco_mp100" / "m_budget2"
    if row == 9999:
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert "row 9999 is not among this command's jobs: gecco_mp100 has rows 0 to 149" in proc.stderr
        assert not list(folder.glob("*/programs.jsonl"))
        return
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "row 63 of gecco_mp100: problem=gcd language=python search.branching_factor=2" in proc.stderr
    [result] = [json.loads(p.read_text()) for p in folder.glob("*/result.json")]
    assert (folder / "63_psb2_gcd_seed0" / "result.json").is_file()
    assert (result["problem"], result["language"], result["branching_factor"]) == ("gcd", "python", 2)
