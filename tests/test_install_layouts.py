"""The sandbox works wherever users install seidr: virtualenvs under /tmp, under a home folder
and under ~/.cache (made with symlinks or --copies), a standalone interpreter in a home folder
(how pyenv and uv install Python), the system's Python, both isolation levels, and seidr run as
root or as a normal user.

Each case makes a small venv (`python -m venv --without-pip`) that sees a copy of the seidr
package, then runs seidr's real sandbox from that venv: the preflight's known-correct program
must pass and its known-wrong one must fail, and a program importing the standard library must
pass. Before the fix, a venv under /tmp or a home ran every test into "the sandbox stopped
before this test ran"."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

from seidr.config import REPO_ROOT
from seidr.execution.sandbox import bwrap_works
from tests import ci
from tests.ci import unavailable

CHECK = r"""
import asyncio, json, sys
from seidr.execution.base import ExecutionLimits
from seidr.execution.preflight import preflight
from seidr.execution.python import PythonExecutor
from seidr.execution.sandbox import Sandbox
from seidr.problem import Example

async def main():
    executor = PythonExecutor(Sandbox(ExecutionLimits(), isolation=sys.argv[1]))
    await preflight(executor)
    code = "import statistics, textwrap\nprint(statistics.median([int(x) for x in input().split()]))"
    outcomes = await executor.run(code, [Example("1 5 3\n", "3\n")], "stdio")
    print(json.dumps({"isolation": executor.sandbox.isolation, "python": executor.sandbox.python,
                      "statuses": [o.status for o in outcomes], "seidr_python": sys.executable}))

asyncio.run(main())
"""

LEVELS = ["namespace", "process"]
IS_ROOT = os.geteuid() == 0
SYSTEM_PYTHON = Path("/usr/bin/python3")


def seidr_copy(where: Path) -> Path:
    """The seidr package where any user can read it (the repository may sit in a closed home)."""
    src = where / "src"
    shutil.copytree(REPO_ROOT / "seidr", src / "seidr", ignore=shutil.ignore_patterns("__pycache__"))
    for path in [src, *src.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return src


def make_venv(base: str, path: Path, src: Path, copies: bool = False) -> Path:
    """A venv made from `base` that imports seidr from `src`; returns its python."""
    subprocess.run([base, "-m", "venv", "--without-pip", *(["--copies"] if copies else []), str(path)],
                   check=True, capture_output=True)
    python = path / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "seidr_src.pth").write_text(f"{src}\n")
    return python


def standalone_python(prefix: Path) -> Path:
    """A self-contained interpreter installed under `prefix`, as pyenv and uv install them: the
    system's binary and standard library copied there (it finds its library next to itself)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    binary, stdlib = Path("/usr/bin") / version, Path("/usr/lib") / version
    if not (binary.is_file() and (stdlib / "os.py").is_file()):
        unavailable(f"no system {version} to copy as a standalone interpreter")
    (prefix / "bin").mkdir(parents=True)
    shutil.copy2(binary, prefix / "bin" / version)
    os.symlink(version, prefix / "bin" / "python3")
    shutil.copytree(stdlib, prefix / "lib" / version, symlinks=True,
                    ignore=shutil.ignore_patterns("dist-packages", "site-packages", "test", "__pycache__"))
    python = prefix / "bin" / "python3"
    found = subprocess.run([str(python), "-c", "import sys; print(sys.base_prefix)"],
                           capture_output=True, text=True).stdout.strip()
    assert found == str(prefix), f"the copied interpreter did not find its own library: {found!r}"
    return python


def check(python: Path, isolation: str, user: int | None = None) -> dict:
    """Run the sandbox from `python` (as `user`, if given) and return what it reported."""
    command = [str(python), "-I", "-c", CHECK, isolation]
    if user is not None:
        command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *command]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(python.parents[2]), "LANG": "C.UTF-8"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=python.parents[2], env=env)
    assert done.returncode == 0, f"seidr's sandbox failed from {python}:\n{done.stderr[-3000:]}"
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["statuses"] == ["pass"], report
    assert report["seidr_python"] == str(python)
    return report


def needs(isolation: str) -> None:
    if isolation == "namespace" and not bwrap_works():
        pytest.fail("bubblewrap does not work here; scripts/setup.sh installs it")


@pytest.mark.parametrize("isolation", LEVELS)
@pytest.mark.parametrize("copies", [False, True], ids=["symlinks", "copies"])
def test_venv_under_tmp(place, isolation, copies):
    needs(isolation)
    python = make_venv(sys._base_executable, place / "venv", seidr_copy(place), copies=copies)
    check(python, isolation)


@pytest.mark.parametrize("isolation", LEVELS)
def test_venv_under_a_home(home_place, isolation):
    needs(isolation)
    python = make_venv(sys._base_executable, home_place / "proj" / ".venv", seidr_copy(home_place))
    check(python, isolation)


@pytest.mark.parametrize("isolation", LEVELS)
def test_venv_under_the_cache_folder(isolation):
    needs(isolation)
    cache = Path.home() / ".cache"
    cache.mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="seidr-layout-", dir=cache))
    try:
        check(make_venv(sys._base_executable, folder / "venv", seidr_copy(folder), copies=True), isolation)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("isolation", LEVELS)
def test_standalone_interpreter_in_a_home(home_place, isolation):
    """pyenv (~/.pyenv/versions/X) and uv (~/.local/share/uv/python/X) both install a whole
    Python under a home; at the namespace level that home is hidden from programs."""
    base = standalone_python(home_place / ".local" / "share" / "uv" / "python" / "cpython-3-linux")
    report = check(make_venv(str(base), home_place / "proj" / ".venv", seidr_copy(home_place)), isolation)
    if isolation == "namespace" or not IS_ROOT:
        assert report["python"].startswith(str(home_place)), report  # the standalone one, mounted back


@pytest.mark.parametrize("isolation", LEVELS)
def test_seidrs_own_interpreter(isolation):
    """The interpreter running these tests (on this kind of machine: pyenv's, under /root)."""
    needs(isolation)
    done = subprocess.run([sys.executable, "-c", CHECK, isolation], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["statuses"] == ["pass"]


@pytest.mark.parametrize("isolation", LEVELS)
def test_system_interpreter_venv(place, isolation):
    needs(isolation)
    if not SYSTEM_PYTHON.exists():
        unavailable("no system python3 at /usr/bin/python3")
    version = subprocess.run([str(SYSTEM_PYTHON), "-c", "import sys; print(sys.version_info >= (3, 11))"],
                             capture_output=True, text=True).stdout.strip()
    if version != "True":
        unavailable("the system python3 is older than 3.11")
    check(make_venv(str(SYSTEM_PYTHON), place / "venv", seidr_copy(place)), isolation)


@ci.needs(IS_ROOT, "already a normal user: every other case here runs as one")
@pytest.mark.parametrize("isolation", ["auto", "process"])
def test_seidr_run_by_a_normal_user(home_place, isolation):
    """seidr itself unprivileged (no run-user switch): its venv in a home folder of its own."""
    owner = 65534  # nobody
    if not SYSTEM_PYTHON.exists():
        unavailable("no system python3 for a normal user (ours is in root's closed home)")
    python = make_venv(str(SYSTEM_PYTHON), home_place / "proj" / ".venv", seidr_copy(home_place))
    subprocess.run(["chown", "-R", f"{owner}:{owner}", str(home_place)], check=True)
    check(python, isolation, user=owner)


def test_harness_is_standard_library_only():
    """The sandbox runs the harness with a bare interpreter: nothing outside the stdlib."""
    source = (REPO_ROOT / "seidr" / "execution" / "harness.py").read_text()
    stdlib = set(sys.stdlib_module_names)
    imported = {line.split()[1].split(".")[0] for line in source.splitlines()
                if line.startswith(("import ", "from "))}
    assert imported and imported <= stdlib | {"__future__"}, imported - stdlib


USES_SEIDR = """
from seidr import dev
import seidr, seidr.data.jsonl
print(seidr.__file__)
"""


def repository_copy(where: Path) -> Path:
    """The repository as a user's clone would hold it (no venv, outputs or build files)."""
    shutil.copytree(REPO_ROOT, where, ignore=shutil.ignore_patterns(
        ".git", ".venv", "outputs", "multirun", "build", "*.egg-info", "__pycache__", ".pytest_cache"))
    return where


@pytest.mark.slow
def test_an_editable_install_imports_from_any_folder_with_the_clone_named_seidr(tmp_path):
    """A clone in a folder named `seidr`, installed as scripts/setup.sh does (`pip install -e`),
    imports seidr from the clone's parent (where the folder could pass for a package), from a
    script there, from inside the clone and from elsewhere."""
    clone = repository_copy(tmp_path / "seidr")
    subprocess.run([sys._base_executable, "-m", "venv", str(tmp_path / "venv")], check=True,
                   capture_output=True)
    python = tmp_path / "venv" / "bin" / "python"
    # the dependencies are this interpreter's (installing them again would take minutes); a plain
    # path line, sorted after the install's own, so nothing there runs or comes first
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "zz_seidr_test_dependencies.pth").write_text(f"{sysconfig.get_paths()['purelib']}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}  # not the tests' own seidr
    installed = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "-q", "-e", str(clone)],
                               capture_output=True, text=True, env=env, timeout=600)
    assert installed.returncode == 0, installed.stderr[-3000:]
    (tmp_path / "use_seidr.py").write_text(USES_SEIDR)
    (tmp_path / "elsewhere").mkdir()
    for cwd, command in [(tmp_path, ["-c", USES_SEIDR]), (tmp_path, ["use_seidr.py"]),
                         (clone, ["-c", USES_SEIDR]), (tmp_path / "elsewhere", ["-c", USES_SEIDR])]:
        done = subprocess.run([str(python), *command], capture_output=True, text=True, cwd=cwd, env=env,
                              timeout=120)
        assert done.returncode == 0, f"from {cwd}: {done.stderr[-2000:]}"
        assert done.stdout.strip() == str(clone / "seidr" / "__init__.py"), (cwd, done.stdout)
