"""The run viewer: the data the page is built from, and the page itself in headless Chromium."""

from __future__ import annotations

import html
import json
import shutil
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest

from seidr.view import (ASSETS, code_diff, load_run, main, render, solution_path, write_run_view,
                        write_sweep_view)
from tests.servers.openai_server import OpenAIServer
from tests.test_cli import read_run, run_main
from tests.test_resume import deep_reply
from tests.ci import needs

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
needs_chromium = needs(bool(CHROMIUM and CHROMEDRIVER),
                       "needs Debian's chromium and chromium-driver (scripts/setup.sh installs them as root)")


class PageParts(HTMLParser):
    """The elements of a page as an HTML parser reads them, and the text of its data block."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.data_block: list[str] = []
        self._in_data = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self._in_data = tag == "script" and ("id", "seidr-data") in attrs

    def handle_endtag(self, tag):
        self._in_data = False

    def handle_data(self, data):
        if self._in_data:
            self.data_block.append(data)


def embedded_data(page: str):
    parts = PageParts()
    parts.feed(page)
    return json.loads("".join(parts.data_block))


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
    assert embedded_data(page) == json.loads(json.dumps(load_run(scripted_run)))


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


@needs_chromium
def test_clicking_a_repair_shows_its_code_and_diff_in_chromium(scripted_run, tmp_path):
    from tests.browser import screenshot_view

    shot = tmp_path / "view.png"
    texts = screenshot_view(write_run_view(scripted_run), shot, click_kind="repair")
    detail = texts["detail"].lower()  # the headings are upper-cased by the page's CSS
    assert "diff against its parent" in detail and "print" in texts["code"]
    assert texts["diff_lines"] > 0 and "explanation it was repaired from" in detail
    assert shot.stat().st_size > 10_000


@needs_chromium
def test_a_thousand_program_tree_renders_and_responds(tmp_path):
    from tests.browser import screenshot_view

    texts = screenshot_view(write_run_view(thousand_program_run(tmp_path)), tmp_path / "big.png")
    assert f"program #{texts['selected']} · repair" in texts["detail"].lower()


# Texts a program, a model or a dataset could hold that would change a page built carelessly: ending
# a script block or opening a comment in it, markup with handlers, a string break-out, the line
# separators, the page template's own slot names, entities that must show as typed.
HOSTILE = ["<!--<script>", "</script><script>window.__seidrRan = 'script'</script>",
           "<img src=x onerror=\"window.__seidrRan = 'img'\">", "'\"><svg onload=\"window.__seidrRan = 'svg'\">",
           "\u2028\u2029 separators", "\"; window.__seidrRan = 'string'; //", "/*DATA*/ /*SCRIPT*/ <!--TITLE-->",
           "&lt;b&gt; &amp; ${window.__seidrRan = 'template'}", "<style>body { display: none }</style>", "tail \\"]


def hostile_run(folder: Path) -> Path:
    """A run folder whose code, outputs, explanations, issues, model and task name are all hostile."""
    nasty = "\n".join(HOSTILE)
    feedback = {"test": 0, "input": nasty, "expected": "<b>" + nasty, "actual": nasty + "</pre>",
                "error": "Traceback <!-- " + nasty}
    records = [{"id": i, "parent_id": None if i == 0 else i - 1, "kind": "draft" if i == 0 else "repair",
                "generation": i, "code": f"# {HOSTILE[i]}\nprint('{HOSTILE[-i]}')  # {nasty}\n",
                "val_score": i / len(HOSTILE), "val_pass_rate": i / len(HOSTILE),
                "passed": [True] * i + [False] * (len(HOSTILE) - i),
                "explanation": None if i == 0 else f"{HOSTILE[i]} {nasty}", "feedback": feedback,
                "reply_issue": HOSTILE[i]} for i in range(len(HOSTILE))]
    (folder / "programs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    result = {"dataset": "<b>psb2</b>",
              "problem": "fizz</title><script>window.__seidrRan = 'title'</script>\\",
              "model": nasty, "split": "<i>", "solved": False, "val_score": 0.5, "best_program_id": 3}
    (folder / "result.json").write_text(json.dumps(result))
    return folder


def test_embedded_data_cannot_end_or_change_its_script_block(tmp_path):
    data = load_run(hostile_run(tmp_path))
    page = render(data)
    parts = PageParts()
    parts.feed(page)
    clean = PageParts()
    clean.feed((ASSETS / "run.html").read_text(encoding="utf-8"))
    assert parts.tags == clean.tags  # the run added no element to the template's
    block = "".join(parts.data_block)
    # nothing in the block can start a tag, a comment or an entity, or end a JavaScript line
    assert not set(block) & {"<", ">", "&", "\u2028", "\u2029"}
    assert json.loads(block) == data
    title = data["title"]
    assert title.endswith("\\") and f"<title>seidr · {html.escape(title)}</title>" in page


@needs_chromium
def test_hostile_texts_are_drawn_as_text_and_nothing_runs_in_chromium(tmp_path):
    from tests.browser import read_view

    run = hostile_run(tmp_path)
    records = [json.loads(line) for line in (run / "programs.jsonl").read_text().splitlines()]
    result = json.loads((run / "result.json").read_text())
    seen = read_view(write_run_view(run))
    assert seen["ran"] is None, f"a text from the run ran as script: {seen['ran']}"
    assert seen["errors"] == []
    tags = seen["elements"]
    assert tags.count("script") == 2 and tags.count("style") == 1
    assert not {"img", "svg", "iframe", "i"} & set(tags)
    title = f"{result['dataset']}/{result['problem']}"
    assert seen["title"] == title and seen["documentTitle"] == f"seidr · {title}"
    assert result["model"] in seen["summary"] and result["split"] in seen["summary"]
    assert [p["id"] for p in seen["programs"]] == [r["id"] for r in records]  # every node drawn
    for shown, record in zip(seen["programs"], records):
        assert shown["code"] == record["code"]
        assert shown["explanation"] == record["explanation"]
        assert record["reply_issue"] in shown["row"]
        assert shown["heading"].startswith(f"Program #{record['id']} · {record['kind']}")
        if record["parent_id"] is not None:
            test = record["feedback"]
            assert shown["shown"] == [test["input"], test["expected"], test["actual"], test["error"]]
            assert record["code"].splitlines()[0] in shown["diff"]


def test_a_sweep_index_shows_hostile_names_as_text(tmp_path):
    sweep = tmp_path / "sweep <i>&amp;"
    job = sweep / "job <img src=x onerror=\"window.__seidrRan = 'job'\">"
    job.mkdir(parents=True)
    result = json.loads((hostile_run(job) / "result.json").read_text())
    index = (write_sweep_view(sweep)).read_text()
    parts, clean = PageParts(), PageParts()
    parts.feed(index)
    clean.feed((ASSETS / "sweep.html").read_text(encoding="utf-8"))
    added = Counter(parts.tags)
    added.subtract(clean.tags)
    assert +added == Counter({"td": 7, "tr": 1, "a": 1})  # one row of cells and its link, nothing else
    shown = html.unescape(index)
    assert f"{result['dataset']}/{result['problem']}" in shown and sweep.name in shown and job.name in shown
