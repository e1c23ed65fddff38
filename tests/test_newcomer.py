"""A newcomer's whole way, as CI runs it: clone the repository into an empty folder, run the README's
first command verbatim in a plain shell, get fizz-buzz solved offline by the embedded model, see one
clear error for a bad problem name, and find nothing in the product that needs a folder beside it.

Slow: the first setup on a cold machine compiles llama-cpp-python (~5 min); with pip's wheel cache
in ~/.cache/pip it takes seconds, and the job usually solves in under a minute."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

SETUP_TIMEOUT_S = 20 * 60  # a cold machine: apt packages, llama-cpp-python compiled from source
JOB_TIMEOUT_S = 10 * 60
TAIL_LINES = 60
# the environment of a shell that has nothing of this checkout's (or pytest's) interpreter in it
UNSET = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "DATA_PATH", "CONDA_PREFIX", "CONDA_DEFAULT_ENV",
         "PYENV_VIRTUAL_ENV", "__PYVENV_LAUNCHER__")


def repo_root() -> Path:
    out = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=Path(__file__).resolve().parent,
                         capture_output=True, text=True, check=True, timeout=60)
    return Path(out.stdout.strip())


def readme_first_command(readme: Path) -> str:
    """The first line of the ```bash block under `## Two commands`, without its trailing # comment."""
    text = readme.read_text(encoding="utf-8")
    section = re.search(r"^## Two commands[ \t]*\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, "README.md has no '## Two commands' section"
    block = re.search(r"^```bash[ \t]*\n(.*?)^```", section.group(1), re.M | re.S)
    assert block, "the '## Two commands' section of README.md has no ```bash block"
    first = next((line for line in block.group(1).splitlines() if line.strip()), "")
    command = re.sub(r"\s+#.*$", "", first).strip()
    assert command, f"the README's first command is empty: {first!r}"
    return command


def newcomer_env() -> dict[str, str]:
    """os.environ (HOME, and so pip's wheel cache, and the PIP_* config kept) minus any virtualenv,
    PYTHONPATH/PYTHONHOME, DATA_PATH and pytest's own variables; PATH without the venv running pytest."""
    env = {k: v for k, v in os.environ.items() if k not in UNSET and not k.startswith("PYTEST_")}
    active = [Path(p).resolve() for p in (os.environ.get("VIRTUAL_ENV"), os.environ.get("CONDA_PREFIX")) if p]
    if sys.prefix != sys.base_prefix:
        active.append(Path(sys.prefix).resolve())

    def inside_active(entry: str) -> bool:
        path = Path(entry).resolve()
        return any(path == root or root in path.parents for root in active)

    env["PATH"] = os.pathsep.join(e for e in env.get("PATH", os.defpath).split(os.pathsep)
                                  if e and not inside_active(e))
    return env


def tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


def report(proc_rc: int | None, stdout: str, stderr: str) -> str:
    return (f"exit code {proc_rc}\n--- stdout (last {TAIL_LINES} lines) ---\n{tail(stdout)}"
            f"\n--- stderr (last {TAIL_LINES} lines) ---\n{tail(stderr)}")


def run_readme_command(command: str, cwd: Path,
                       env: dict[str, str]) -> tuple[int | None, str, str, float, float]:
    """Runs `bash -c command`, echoing its output as it comes; returns the exit code (None when it was
    stopped for taking too long), stdout, stderr, and the wall times of setup (until setup.sh says
    `setup: done`) and of what follows it. Setup gets SETUP_TIMEOUT_S, the job JOB_TIMEOUT_S."""
    proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
                            start_new_session=True)
    start = time.monotonic()
    setup_done: list[float] = []
    out: list[str] = []
    err: list[str] = []

    def pump(stream, sink: list[str], name: str) -> None:
        for line in stream:
            sink.append(line)
            if name == "stdout" and line.startswith("setup: done") and not setup_done:
                setup_done.append(time.monotonic())
            print(f"  [{time.monotonic() - start:7.1f} s {name}] {line}", end="", flush=True)

    readers = [threading.Thread(target=pump, args=(proc.stdout, out, "stdout"), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, err, "stderr"), daemon=True)]
    for reader in readers:
        reader.start()
    returncode: int | None = None
    while True:
        try:
            returncode = proc.wait(timeout=1)
            break
        except subprocess.TimeoutExpired:
            now = time.monotonic()
            late = (now - setup_done[0] > JOB_TIMEOUT_S) if setup_done else (now - start > SETUP_TIMEOUT_S)
            if late:
                stage = "the job" if setup_done else "setup"
                err.append(f"\n[test_newcomer: {stage} took too long; stopped it]\n")
                os.killpg(proc.pid, 9)  # the process group this test started (bash and its children)
                proc.wait()
                break
    for reader in readers:
        reader.join(timeout=30)
    end = time.monotonic()
    setup_s = (setup_done[0] if setup_done else end) - start
    job_s = end - setup_done[0] if setup_done else 0.0
    return returncode, "".join(out), "".join(err), setup_s, job_s


@pytest.mark.slow
@pytest.mark.timeout(SETUP_TIMEOUT_S + JOB_TIMEOUT_S + 5 * 60)
@pytest.mark.parametrize("own_venv", [False, True], ids=["setup-makes-the-venv", "own-venv-activated"])
def test_a_newcomer_clones_runs_the_readme_command_and_gets_fizz_buzz_solved(tmp_path, own_venv):
    # 1. a clone of what is committed, in a folder with nothing beside it (no shared/ folder)
    alone = tmp_path / "alone"
    alone.mkdir()
    clone = alone / "seidr"
    cloned = subprocess.run(["git", "clone", "--quiet", str(repo_root()), str(clone)],
                            capture_output=True, text=True, timeout=10 * 60)
    assert cloned.returncode == 0, report(cloned.returncode, cloned.stdout, cloned.stderr)
    assert [p.name for p in alone.iterdir()] == ["seidr"]

    # 2. the README's first command, verbatim, in a new user's shell
    command = readme_first_command(clone / "README.md")
    print(f"\nREADME's first command: {command}")
    env = newcomer_env()
    if own_venv:  # `python3 -m venv ~/.venvs/seidr && . ~/.venvs/seidr/bin/activate` first, as many do
        venv = tmp_path / "home" / ".venvs" / "seidr"
        subprocess.run([sys.executable if sys.prefix == sys.base_prefix else sys._base_executable, "-m", "venv",
                        str(venv)], check=True, capture_output=True, timeout=10 * 60)
        env.update(VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}")
    returncode, stdout, stderr, setup_s, job_s = run_readme_command(command, clone, env)
    print(f"wall time: setup {setup_s:.1f} s, job {job_s:.1f} s")
    why = report(returncode, stdout, stderr)
    assert returncode is not None, "timed out\n" + why
    assert "setup: done" in stdout, "setup did not finish\n" + why
    assert returncode == 0, why

    python = clone / ".venv" / "bin" / "python"
    assert python.is_file(), "setup made no .venv in the clone\n" + why
    probe = subprocess.run([str(python), "-c", "import sys, seidr; print(sys.prefix); print(seidr.__file__)"],
                           cwd=clone, env=env, capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, report(probe.returncode, probe.stdout, probe.stderr)
    venv_prefix, seidr_file = (Path(line).resolve() for line in probe.stdout.splitlines()[:2])
    tmp = tmp_path.resolve()
    assert tmp in venv_prefix.parents, f"the clone's venv {venv_prefix} is not under {tmp}"
    assert venv_prefix != Path(sys.prefix).resolve(), f"the clone's venv is pytest's own, {sys.prefix}"
    assert clone.resolve() in seidr_file.parents, f"the clone's venv imports seidr from {seidr_file}"

    summary = [line for line in stdout.splitlines()
               if re.match(r"^psb2/fizz-buzz: (solved|not solved) ", line)]
    assert summary, "main.py printed no summary line\n" + why
    assert summary[-1].startswith("psb2/fizz-buzz: solved "), f"{summary[-1]}\n{why}"
    results = sorted((clone / "outputs" / "runs" / "psb2" / "fizz-buzz").glob("*/result.json"))
    assert len(results) == 1, f"expected one result.json, found {results}\n{why}"
    result = json.loads(results[0].read_text())
    assert result["solved"] is True and result["problem"] == "fizz-buzz", (result, why)
    print(f"fizz-buzz solved with {result['programs']} programs in {result['wall_s']:.1f} s (seidr's wall_s)")

    # 3. a bad problem name: one clear error line, exit code 2, no traceback
    bad = subprocess.run([str(python), "main.py", "problem=no-such-problem"], cwd=clone, env=env,
                         capture_output=True, text=True, timeout=JOB_TIMEOUT_S)
    why_bad = report(bad.returncode, bad.stdout, bad.stderr)
    assert bad.returncode == 2, why_bad
    errors = [line for line in bad.stderr.splitlines() if line.startswith("seidr: error:")]
    assert len(errors) == 1 and "no-such-problem" in errors[0], why_bad
    assert "Traceback" not in bad.stderr and "Traceback" not in bad.stdout, why_bad

    # 4. nothing in the product, its setup or its tests refers to a folder beside the clone. The
    # pattern is built so that it does not appear literally here; data's provenance notes may name it
    pattern = re.escape("..") + "/" + "sha" + "red"
    grep = subprocess.run(["git", "grep", "-n", "-I", "-e", pattern, "--", ".",
                           ":(exclude,glob)data/**/SOURCE.md", ":(exclude,glob)data/**/README.md"],
                          cwd=clone, capture_output=True, text=True, timeout=120)
    assert grep.returncode == 1 and not grep.stdout, (
        f"files in the repository refer to the folder beside it (git grep exit {grep.returncode}):\n"
        f"{grep.stdout}{grep.stderr}")
