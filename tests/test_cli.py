"""main.py as a researcher runs it: subprocesses, real config, real exit codes and messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seidr.config import REPO_ROOT


def run_main(*overrides: str, env: dict[str, str] | None = None, data_dir: Path | None = None,
             output_root: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    args = [sys.executable, str(REPO_ROOT / "main.py"), *overrides]
    if data_dir is not None:
        args.append(f"paths.data_dir={data_dir}")
    if output_root is not None:
        args.append(f"paths.output_root={output_root}")
    full_env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "DATA_PATH")}
    full_env.update(env or {})
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=REPO_ROOT)


def assert_one_clear_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    line = next(line for line in proc.stderr.splitlines() if line.startswith("seidr: error:"))
    for needle in needles:
        assert needle in line, (needle, proc.stderr)
    return line


def test_unknown_problem_lists_the_valid_names(data_dir, tmp_path):
    proc = run_main("problem=bowlin", data_dir=data_dir, output_root=tmp_path)
    assert_one_clear_error(proc, "bowlin", "valid names", "bowling", "fizz-buzz")


def test_unknown_humaneval_problem(data_dir, tmp_path):
    proc = run_main("dataset=humaneval", "problem=HumanEval/500", data_dir=data_dir, output_root=tmp_path)
    assert_one_clear_error(proc, "HumanEval/500", "HumanEval/0")


def test_missing_data_folder_says_where_it_looked_and_how_to_set_it(tmp_path):
    proc = run_main(data_dir=tmp_path / "no-data", output_root=tmp_path)
    assert_one_clear_error(proc, str(tmp_path / "no-data"), "DATA_PATH")


def test_missing_api_key_names_the_fix(data_dir, tmp_path):
    proc = run_main("model=openai", data_dir=data_dir, output_root=tmp_path)
    assert_one_clear_error(proc, "OPENAI_API_KEY")


def test_bad_override_is_rejected_by_hydra_without_traceback(data_dir, tmp_path):
    proc = run_main("search.max_programz=3", data_dir=data_dir, output_root=tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and "max_programz" in proc.stderr


def test_unsupported_language_is_explained(data_dir, tmp_path):
    proc = run_main("language=rust", "model=openai", "model.api_key=x", data_dir=data_dir, output_root=tmp_path)
    assert_one_clear_error(proc, "language=rust")
