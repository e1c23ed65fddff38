"""A broken sandbox never passes for a failing program: the preflight stops a run before any
budget is spent, and a sandbox that breaks mid-run stops it with what was recorded kept.

The broken machines here are real ones: an interpreter wrapper that stops working after a
number of starts, an interpreter whose standard library the unprivileged run user cannot
read (the issue's `import copy` failure), and C++ function tasks whose own protocol (two
translation units, a report with a per-run secret) is broken while stdin/stdout programs work."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from seidr.config import REPO_ROOT
from seidr.errors import SandboxBroken
from seidr.execution.base import ExecutionLimits
from seidr.execution.cpp import CppExecutor
from seidr.execution.preflight import preflight
from seidr.execution.python import PythonExecutor
from seidr.execution.sandbox import Sandbox, bwrap_works
from tests.ci import needs, unavailable
from tests.servers.openai_server import OpenAIServer
from tests.test_install_layouts import SYSTEM_PYTHON, standalone_python

RIGHT = ("x = int(input())\n"
         "print('FizzBuzz' if x % 15 == 0 else 'Fizz' if x % 3 == 0 else 'Buzz' if x % 5 == 0 else x)\n")


def reply(messages, body, index):
    if "Do not write code" in messages[-1]["content"]:
        return "It prints the number where it should print Fizz."
    # a different program per request, so no verdict is reused and each one needs the sandbox
    asked = zlib.crc32(json.dumps(messages).encode())
    return f"```python\n# request {asked} choice {index}\nx = int(input())\nprint(x)\n```"


def flaky_python(folder: Path, works_for: int) -> Path:
    """An interpreter that starts `works_for` times, then exits 3 saying why (a machine that
    broke: a disk that went away, an interpreter uninstalled under a running job)."""
    if not SYSTEM_PYTHON.exists():
        unavailable("needs the system python3 (readable by the run user)")
    script = folder / "python"
    # the count under a lock: the preflight starts its canaries at the same time
    script.write_text(f"""#!/bin/sh
exec 9>>{folder}/count.lock
flock 9
n=$(( $(cat {folder}/count 2>/dev/null || echo 0) + 1 )); echo $n > {folder}/count
exec 9>&-
if [ $n -gt {works_for} ]; then echo "flaky-python: gone on start $n" >&2; exit 3; fi
exec {SYSTEM_PYTHON} "$@"
""")
    script.chmod(0o755)
    return script


def main_py(*overrides: str, server: OpenAIServer, run_dir: Path, data_dir: Path) -> subprocess.CompletedProcess:
    args = [sys.executable, str(REPO_ROOT / "main.py"), "model=openai", "model.name=m", "model.api_key=k",
            f"model.base_url={server.base_url}", "model.max_retries=0", "tracking=none", "search.max_programs=6",
            f"hydra.run.dir={run_dir}", f"paths.data_dir={data_dir}", f"model.cache_dir={run_dir.parent / 'cache'}",
            *overrides]
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=300)


def error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    return next(line for line in proc.stderr.splitlines() if line.startswith("seidr: error:"))


def test_preflight_stops_before_any_llm_call(place, data_dir):
    python = flaky_python(place, works_for=1)  # the probe runs; the harness never does
    with OpenAIServer(reply, model="m") as server:
        proc = main_py("execution.isolation=process", f"execution.python={python}", server=server,
                       run_dir=place / "run", data_dir=data_dir)
        assert server.posts("/v1/chat/completions") == []  # no budget spent
    line = error_line(proc)
    assert "execution.isolation=process" in line and str(python) in line and "gone on start" in line, line
    assert not (place / "run" / "programs.jsonl").exists()


def test_a_sandbox_that_breaks_mid_run_stops_the_run_and_keeps_what_was_recorded(place, data_dir):
    # starts 1-3: the probe and the two canaries; 4-6 score the first two drafts; then it breaks
    python = flaky_python(place, works_for=5)
    run_dir = place / "run"
    with OpenAIServer(reply, model="m") as server:
        proc = main_py("execution.isolation=process", f"execution.python={python}", "execution.workers=1",
                       "search.branching_factor=2", server=server, run_dir=run_dir, data_dir=data_dir)
    line = error_line(proc)
    assert "gone on start" in line and "sandbox" in line, line
    result = json.loads((run_dir / "result.json").read_text())
    assert result["stopped"] == "error" and "gone on start" in result["error"]
    programs = [json.loads(text) for text in (run_dir / "programs.jsonl").read_text().splitlines()]
    # the programs the sandbox did run are kept, each with a real verdict; none was scored
    # "error" for the machine's sake
    assert 1 <= len(programs) < 6
    assert all(status in ("pass", "wrong") for p in programs for status in p["statuses"]), [(p["statuses"], p["feedback"]) for p in programs]

    # the machine is fixed: the rerun resumes the job instead of calling it finished
    (place / "count").write_text("-1000\n")
    with OpenAIServer(reply, model="m") as server:
        again = main_py("execution.isolation=process", f"execution.python={python}", "execution.workers=1",
                        "search.branching_factor=2", server=server, run_dir=run_dir, data_dir=data_dir)
    assert again.returncode == 0, again.stderr[-2000:]
    result = json.loads((run_dir / "result.json").read_text())
    assert result["stopped"] == "budget" and result["programs"] == 6
    kept = [json.loads(text) for text in (run_dir / "programs.jsonl").read_text().splitlines()]
    assert kept[: len(programs)] == programs and len(kept) == 6


@needs(os.geteuid() == 0, "the run user exists only when seidr runs as root")
@pytest.mark.parametrize("isolation", ["namespace", "process"])
async def test_a_standard_library_the_run_user_cannot_read_is_the_machines_fault(place, isolation):
    if isolation == "namespace" and not bwrap_works():
        pytest.fail("bubblewrap does not work here; scripts/setup.sh installs it")
    python = standalone_python(place / "closed")
    (place / "closed" / "lib").chmod(0o700)  # like a pyenv Python in a home closed to others
    with pytest.raises(SandboxBroken, match="standard library") as raised:
        await preflight(PythonExecutor(Sandbox(ExecutionLimits(), isolation=isolation, python=str(python))))
    assert str(python) in str(raised.value) or str(place) in str(raised.value)


async def test_a_missing_compiler_is_the_machines_fault():
    executor = CppExecutor(Sandbox(ExecutionLimits(), isolation="process"), compiler="g++-not-installed")
    with pytest.raises(SandboxBroken, match="g\\+\\+-not-installed is not installed"):
        await preflight(executor)


@pytest.mark.parametrize("language", ["python", "cpp"])
async def test_preflight_passes_on_a_working_machine_and_times_itself(language):
    sandbox = Sandbox(ExecutionLimits(), isolation="auto")
    executor = PythonExecutor(sandbox) if language == "python" else CppExecutor(sandbox)
    assert await preflight(executor) > 0


def test_a_sandbox_that_breaks_while_scoring_the_held_out_tests_keeps_the_search(place, data_dir):
    python = flaky_python(place, works_for=10**6)
    args = ("execution.isolation=process", f"execution.python={python}", "execution.workers=1",
            "search.branching_factor=2")
    # a rehearsal counts the sandbox starts; the held-out tests of the best program are the last
    with OpenAIServer(reply, model="m") as server:
        assert main_py(*args, server=server, run_dir=place / "rehearsal", data_dir=data_dir).returncode == 0
    starts = int((place / "count").read_text())
    python = flaky_python(place, works_for=starts - 1)
    (place / "count").write_text("0\n")
    run_dir = place / "run"
    with OpenAIServer(reply, model="m") as server:
        proc = main_py(*args, server=server, run_dir=run_dir, data_dir=data_dir)
    assert "gone on start" in error_line(proc)  # the held-out run and its one retry
    result = json.loads((run_dir / "result.json").read_text())
    assert result["stopped"] == "error" and result["test_pass_rate"] is None and result["programs"] == 6
    (place / "count").write_text("-1000\n")
    with OpenAIServer(reply, model="m") as server:
        again = main_py(*args, server=server, run_dir=run_dir, data_dir=data_dir)
    assert again.returncode == 0, again.stderr[-2000:]
    result = json.loads((run_dir / "result.json").read_text())
    assert result["stopped"] == "budget" and result["test_pass_rate"] is not None


# ---- C++ function tasks: their own protocol, their own canaries ----

def broken_link_compiler(folder: Path) -> Path:
    """A toolchain that builds whole programs but not one from two translation units: the
    objects it is asked for with -c come out empty (a wrapper that mishandles -c)."""
    real = shutil.which("g++")
    if real is None:
        unavailable("needs g++")
    script = folder / "g++"
    script.write_text(f"""#!/bin/sh
for arg in "$@"; do
  if [ "$arg" = "-c" ]; then exec {real} -x c++ -c -o server.o /dev/null; fi
done
exec {real} "$@"
""")
    script.chmod(0o755)
    return script


# Protocol breaks made in seidr's own code, as a regression or a half-updated install would
PROTOCOL_BREAKS = {
    "the harness hands the test no secret": (
        "seidr.execution.sandbox.HARNESS_SOURCE", 'os.write(write_end, (secret + "\\n").encode())',
        'os.write(write_end, b"")'),
    "the checker's asserts never fail": (
        "seidr.execution.cpp_protocol.ASSERT_MACRO", "#define assert(...) ((__VA_ARGS__) ? (void)0 :",
        "#define assert(...) (true ? (void)0 :"),
}


async def test_a_toolchain_that_cannot_link_a_function_task_is_the_machines_fault(place):
    executor = CppExecutor(Sandbox(ExecutionLimits(), isolation="process"), compiler=str(broken_link_compiler(place)))
    assert await preflight(executor, modes=("stdio",)) > 0  # stdin/stdout programs still work
    with pytest.raises(SandboxBroken, match="known-correct cpp function-task program got 'compile'"):
        await preflight(executor)


@pytest.mark.parametrize("name", sorted(PROTOCOL_BREAKS))
async def test_a_broken_cpp_function_protocol_is_the_machines_fault(monkeypatch, name):
    target, old, new = PROTOCOL_BREAKS[name]
    module, attribute = target.rsplit(".", 1)
    source = getattr(importlib.import_module(module), attribute)
    assert old in source, "the protocol changed: update this test's break"
    monkeypatch.setattr(target, source.replace(old, new))
    executor = CppExecutor(Sandbox(ExecutionLimits(), isolation="auto"))
    assert await preflight(executor, modes=("stdio",)) > 0
    kind = "known-wrong" if "never fail" in name else "known-correct"
    with pytest.raises(SandboxBroken, match=f"a {kind} cpp function-task program got"):
        await preflight(executor)
