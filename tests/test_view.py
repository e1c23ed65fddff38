"""The run viewer: the data the page is built from, and the page itself in headless Chromium."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from seidr.view import ASSETS, code_diff, load_run, main, solution_path, write_run_view
from tests.servers.openai_server import OpenAIServer
from tests.test_cli import read_run, run_main
from tests.test_resume import deep_reply
from tests.ci import needs

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def scripted_run(data_dir, tmp_path_factory) -> Path:
    """A real run (drafts, explanations, repairs three deep, solved) by a scripted model."""
    out = tmp_path_factory.mktemp("view")
    with OpenAIServer(deep_reply, model="m") as server:
        proc = run_main("model=openai", "model.name=m", "model.api_key=k", f"model.base_url={server.base_url}",
                        "search.max_programs=40", data_dir=data_dir, output_root=out)
    assert proc.returncode == 0, proc.stderr
    [result] = list(out.rglob("result.json"))
    return result.parent


def test_tree_nodes_carry_what_the_page_shows(scripted_run):
    data = load_run(scripted_run)
    result, programs = read_run(scripted_run)
    assert [n["id"] for n in data["nodes"]] == [p["id"] for p in programs]
    repair = next(n for n in data["nodes"] if n["kind"] == "repair")
    parent = next(p for p in programs if p["id"] == repair["parent"])
    assert repair["explanation"] and repair["shownTest"]["input"] and repair["shownTest"]["expected"]
    assert repair["shownTest"] == parent["feedback"]  # the parent's worst failing test is what the LLM saw
    assert repair["diff"] == code_diff(parent["code"], repair["code"])
    assert data["best"] == result["best_program_id"] and data["nodes"][data["best"]]["score"] == 1.0


def test_solution_path_runs_from_a_draft_to_the_best():
    by_id = {0: {"parent_id": None}, 1: {"parent_id": None}, 2: {"parent_id": 1}, 3: {"parent_id": 0},
             4: {"parent_id": 2}}
    assert solution_path(by_id, 4) == [1, 2, 4]
    assert solution_path(by_id, 0) == [0] and solution_path(by_id, None) == []


def test_diff_marks_added_and_removed_lines():
    diff = code_diff("a = 1\nprint(a)\n", "a = 2\nprint(a)\n")
    assert ["-", "a = 1"] in diff and ["+", "a = 2"] in diff and [" ", "print(a)"] in diff
    assert code_diff("same\n", "same\n") == []


def test_page_is_self_contained(scripted_run):
    page = write_run_view(scripted_run).read_text()
    assert "<script src" not in page and "<link" not in page and "http://" not in page and "https://" not in page
    # the style, the script and the run's data are all inside the page
    assert "/*STYLE*/" not in page and "/*SCRIPT*/" not in page and "/*DATA*/" not in page
    assert (ASSETS / "view.js").read_text(encoding="utf-8") in page
    embedded = page.split("const SEIDR = ", 1)[1].split(";</script>", 1)[0]
    assert json.loads(embedded) == json.loads(json.dumps(load_run(scripted_run)))


def test_cli_writes_the_page_and_a_sweep_index(scripted_run, capsys):
    assert main([str(scripted_run)]) == 0
    assert capsys.readouterr().out.strip() == str(scripted_run / "view.html")
    sweep = scripted_run.parent
    assert main([str(sweep)]) == 0
    index = (sweep / "view.html").read_text()
    assert "fizz-buzz" in index and scripted_run.name in index
    assert main([str(sweep / "does-not-exist")]) == 2


def thousand_program_run(tmp_path) -> Path:
    lines = []
    for i in range(1000):
        lines.append(json.dumps({"id": i, "parent_id": None if i < 10 else (i - 10) // 3, "kind": "draft" if i < 10
                                 else "repair", "generation": 0 if i < 10 else 1, "code": f"print({i})\n" * 20,
                                 "val_score": (i % 50) / 50, "val_pass_rate": 0.0, "passed": [i % 2 == 0] * 50,
                                 "explanation": "x", "feedback": {"test": 0, "input": "1\n", "expected": "2\n",
                                                                  "actual": "3\n", "error": ""}}))
    (tmp_path / "programs.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_a_thousand_programs_make_one_page(tmp_path):
    page = write_run_view(thousand_program_run(tmp_path))
    assert page.read_text().count('"kind": "repair"') == 990


@needs(bool(CHROMIUM and CHROMEDRIVER),
       "needs Debian's chromium and chromium-driver (scripts/setup.sh installs them as root)")
def test_clicking_a_repair_shows_its_code_and_diff_in_chromium(scripted_run, tmp_path):
    from tests.browser import screenshot_view

    shot = tmp_path / "view.png"
    texts = screenshot_view(write_run_view(scripted_run), shot, click_kind="repair")
    detail = texts["detail"].lower()  # the headings are upper-cased by the page's CSS
    assert "diff against its parent" in detail and "print" in texts["code"]
    assert texts["diff_lines"] > 0 and "explanation it was repaired from" in detail
    assert shot.stat().st_size > 10_000


@needs(bool(CHROMIUM and CHROMEDRIVER), "needs Debian's chromium and chromium-driver")
def test_a_thousand_program_tree_renders_and_responds(tmp_path):
    from tests.browser import screenshot_view

    texts = screenshot_view(write_run_view(thousand_program_run(tmp_path)), tmp_path / "big.png")
    assert f"program #{texts['selected']} · repair" in texts["detail"].lower()
