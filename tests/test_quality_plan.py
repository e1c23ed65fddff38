"""benchmarks.quality's job plan: seeds as an axis, in an order that makes a partial run comparable."""

from __future__ import annotations

from pathlib import Path

from benchmarks.quality import job_folder, plan_jobs
from tests.test_experiments import composer  # noqa: F401  (the fixture: Hydra composes the experiment)


def test_jobs_run_seed_by_seed_and_problem_by_problem_across_configurations():
    jobs = plan_jobs([0, 1], ["greedy", "resample"], ["humaneval:HumanEval/0", "psb2:gcd"])
    assert jobs == [(0, "greedy", "humaneval:HumanEval/0"), (0, "resample", "humaneval:HumanEval/0"),
                    (0, "greedy", "psb2:gcd"), (0, "resample", "psb2:gcd"),
                    (1, "greedy", "humaneval:HumanEval/0"), (1, "resample", "humaneval:HumanEval/0"),
                    (1, "greedy", "psb2:gcd"), (1, "resample", "psb2:gcd")]
    # stopped after any prefix, every configuration has finished the same problems (give or take one)
    for stop in range(len(jobs) + 1):
        done = jobs[:stop]
        per_config = [{(s, p) for s, c, p in done if c == label} for label in ("greedy", "resample")]
        assert len(per_config[0] ^ per_config[1]) <= 1


def test_each_seed_has_its_own_run_folder_and_the_label_stays_seedless():
    folders = {job_folder(Path("out"), seed, "resample", "humaneval:HumanEval/3") for seed in (0, 1, 2)}
    assert len(folders) == 3
    assert job_folder(Path("out"), 1, "resample", "humaneval:HumanEval/3") == \
        Path("out/resample/seed1/humaneval/HumanEval-3")


def test_an_experiment_runs_every_job_once_per_seed_with_seed_on_the_command_line(composer):
    from hydra_plugins.seidr_grids_sweeper import GridsSweeper

    base = composer("config", overrides=["+experiments=psb2_gpt3_5_lexicase"], return_hydra_config=True)
    sweeper = GridsSweeper(grids=base.hydra.sweeper.grids, params=base.hydra.sweeper.params)
    narrowed = ["problem=gcd", "language=python"]
    plain = sweeper.job_overrides(narrowed)
    seeded = sweeper.job_overrides([*narrowed, "seed=0,1,2"])
    assert len(seeded) == 3 * len(plain)
    without_seed = [sorted(o for o in job if not o.startswith("seed=")) for job in seeded]
    assert all(without_seed.count(sorted(job)) == 3 for job in plain)  # each job once per seed
