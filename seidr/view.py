"""`python -m seidr.view <run dir or sweep dir> [--open]`: one self-contained HTML page per run
(the program tree, each program's code, explanation, failing test and diff against its parent)
and, for a sweep, an index of its jobs. No server, no network: data, script and styles are
inlined, so the page opens from disk and can go into a paper's supplement."""

from __future__ import annotations

import argparse
import difflib
import html
import json
import os
import re
import sys
import webbrowser
from pathlib import Path
from typing import Any

from seidr.redact import Redactor

ASSETS = Path(__file__).with_name("view_assets")


def load_run(run_dir: Path) -> dict[str, Any]:
    """What the page shows of one run, from its programs.jsonl and result.json."""
    programs_path = run_dir / "programs.jsonl"
    if not programs_path.is_file():
        raise FileNotFoundError(f"{run_dir} has no programs.jsonl: not a seidr run folder")
    records = []
    for line in programs_path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            break  # a line torn by a kill
    result_path = run_dir / "result.json"
    result = json.loads(result_path.read_text(encoding="utf-8")) if result_path.is_file() else {}
    by_id = {r["id"]: r for r in records}
    best = result.get("best_program_id")
    if best is None and records:
        best = max(records, key=lambda r: (r["val_score"], -r["id"]))["id"]
    nodes = []
    for r in records:
        parent = by_id.get(r["parent_id"]) if r["parent_id"] is not None else None
        nodes.append({
            "id": r["id"], "parent": r["parent_id"], "kind": r["kind"], "generation": r["generation"],
            "score": r["val_score"], "passRate": r["val_pass_rate"], "passed": r["passed"],
            "tokens": r.get("tokens", 0), "code": r["code"], "explanation": r.get("explanation"),
            "shownTest": parent.get("feedback") if parent else None,  # what the LLM saw when repairing
            "diff": code_diff(parent["code"], r["code"]) if parent else None,
            "issue": r.get("reply_issue"),
        })
    return {"title": f"{result.get('dataset', '')}/{result.get('problem', run_dir.name)}",
            "result": {k: v for k, v in result.items() if k != "best_program"}, "nodes": nodes,
            "solutionPath": solution_path(by_id, best), "best": best,
            "language": result.get("language", "python")}


def code_diff(before: str, after: str) -> list[list[str]]:
    """A unified diff as [kind, text] lines, kind one of ' ', '+', '-', '@'."""
    lines = difflib.unified_diff(before.splitlines(), after.splitlines(), "parent", "repair", lineterm="", n=3)
    diff = []
    for line in list(lines)[2:]:  # the file header lines say nothing here
        kind = line[:1] if line[:1] in "+-@" else " "
        diff.append([kind, line[1:] if kind != "@" else line])
    return diff


def solution_path(by_id: dict[int, dict[str, Any]], best: int | None) -> list[int]:
    """The ids from the draft at the root down to the best program."""
    path = []
    while best is not None and best in by_id and best not in path:
        path.append(best)
        best = by_id[best]["parent_id"]
    return path[::-1]


# What could end a <script> element or open a comment in it, and the two line separators some
# JavaScript parsers take for a line end: escaped so the JSON block is inert whatever it holds.
_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                              "\u2028": "\\u2028", "\u2029": "\\u2029"})
_SLOT = re.compile(r"/\*(?:STYLE|SCRIPT|DATA)\*/|<!--(?:TITLE|ROWS|PLOTS)-->")


def script_json(data: Any) -> str:
    """`data` as JSON that cannot end or change the <script> block it is put in."""
    return json.dumps(data, ensure_ascii=False).translate(_SCRIPT_SAFE)


def fill(template: str, slots: dict[str, str]) -> str:
    """Each slot of the template replaced in one pass: text put in is never searched for slots."""
    return _SLOT.sub(lambda match: slots[match.group(0)], template)


def render(data: dict[str, Any]) -> str:
    """The page for one run. The data goes in as a JSON block the script reads (never as code or
    markup), the title as escaped text; the script puts every text on the page as text."""
    template = (ASSETS / "run.html").read_text(encoding="utf-8")
    return fill(template, {"/*STYLE*/": (ASSETS / "view.css").read_text(encoding="utf-8"),
                           "/*SCRIPT*/": (ASSETS / "view.js").read_text(encoding="utf-8"),
                           "/*DATA*/": script_json(data),
                           "<!--TITLE-->": html.escape(data["title"])})


def write_run_view(run_dir: Path, redactor: Redactor | None = None) -> Path:
    """The run's page, with secrets masked in all it shows (code, outputs, the result)."""
    target = run_dir / "view.html"
    target.write_text(render((redactor or Redactor()).data(load_run(run_dir))), encoding="utf-8")
    return target


def write_sweep_view(sweep_dir: Path, redactor: Redactor | None = None) -> Path:
    """One view per job, and an index of the jobs (with the report's plots when present)."""
    redactor = redactor or Redactor()
    rows = []
    for programs in sorted(sweep_dir.rglob("programs.jsonl")):
        run_dir = programs.parent
        page = write_run_view(run_dir, redactor)
        result_path = run_dir / "result.json"
        result = json.loads(result_path.read_text(encoding="utf-8")) if result_path.is_file() else {}
        result = redactor.data(result)
        rows.append((run_dir, page, result))
    if not rows:
        raise FileNotFoundError(f"no seidr runs (programs.jsonl) under {sweep_dir}")
    cells = "".join(
        "<tr><td><a href=\"{link}\">{job}</a></td><td>{problem}</td><td>{config}</td><td>{solved}</td>"
        "<td>{test}</td><td>{programs}</td><td>{tokens}</td></tr>".format(
            link=html.escape(str(page.relative_to(sweep_dir))), job=html.escape(str(run.relative_to(sweep_dir))),
            problem=html.escape(f"{r.get('dataset', '?')}/{r.get('problem', '?')}"),
            config=html.escape(f"{r.get('language', '')} {r.get('model', '')} {r.get('selection', '')} "
                               f"seed {r.get('seed', '')}"),
            solved={True: "yes", False: "no"}.get(r.get("solved"), "unfinished"),
            test="" if r.get("test_pass_rate") is None else f"{r['test_pass_rate']:.3f}",
            programs=r.get("programs", ""),
            tokens=(r.get("prompt_tokens") or 0) + (r.get("completion_tokens") or 0) if r else "")
        for run, page, r in rows)
    plots = "".join(f'<figure><img src="{html.escape(str(p.relative_to(sweep_dir)))}" alt="{html.escape(p.stem)}">'
                    f"<figcaption>{html.escape(p.stem)}</figcaption></figure>"
                    for p in sorted(sweep_dir.rglob("*.png")))
    page = fill((ASSETS / "sweep.html").read_text(encoding="utf-8"),
                {"/*STYLE*/": (ASSETS / "view.css").read_text(encoding="utf-8"),
                 "<!--TITLE-->": html.escape(sweep_dir.name), "<!--ROWS-->": cells, "<!--PLOTS-->": plots})
    target = sweep_dir / "view.html"
    target.write_text(page, encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seidr.view", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a run folder (with programs.jsonl) or a sweep folder")
    parser.add_argument("--open", action="store_true", help="open the page in the default browser")
    args = parser.parse_args(argv)
    folder = args.folder
    if not folder.is_dir():
        print(f"seidr.view: error: {folder} is not a folder", file=sys.stderr)
        return 2
    # an entry point: the environment's secrets are gathered here, for the library to mask
    redactor = Redactor.from_sources(environ=os.environ)
    try:
        target = (write_run_view(folder, redactor) if (folder / "programs.jsonl").is_file()
                  else write_sweep_view(folder, redactor))
    except (FileNotFoundError, ValueError, KeyError) as error:
        print(f"seidr.view: error: {error}", file=sys.stderr)
        return 2
    print(target)
    if args.open:
        webbrowser.open(target.resolve().as_uri())
    return 0


if __name__ == "__main__":
    sys.exit(main())
