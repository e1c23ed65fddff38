"""The test suite's own helpers: one reading of CI for every test (a missing part fails there and
skips elsewhere), and stopping only the daemons a test run started."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.ci import apply_needs, in_ci, needs, unavailable
from tests.daemons import Daemons, live_pid


@pytest.mark.parametrize("value", ["true", "True", "1", "yes", "github-actions"])
def test_ci_set_to_anything_but_a_no_is_ci(value):
    assert in_ci({"CI": value})


@pytest.mark.parametrize("value", [None, "", "0", "false", "FALSE", "no", "off", " false "])
def test_ci_unset_or_a_no_is_not_ci(value):
    assert not in_ci({} if value is None else {"CI": value})


def test_a_missing_part_fails_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true: no g\\+\\+ here"):
        unavailable("no g++ here")


@pytest.mark.parametrize("value", [None, "false"])
def test_a_missing_part_skips_elsewhere(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match="no g\\+\\+ here"):
        unavailable("no g++ here")


def _item(*marks: pytest.MarkDecorator) -> SimpleNamespace:
    """Just what apply_needs reads of a collected test."""
    return SimpleNamespace(iter_markers=lambda name: [m.mark for m in marks if m.mark.name == name])


def test_needs_runs_a_test_whose_part_is_there(monkeypatch):
    monkeypatch.setenv("CI", "true")
    apply_needs(_item(needs(True, "bubblewrap"), pytest.mark.slow))  # neither skips nor fails


def test_needs_fails_under_ci_and_skips_elsewhere(monkeypatch):
    item = _item(needs(True, "g++"), needs(False, "bubblewrap does not work here"))
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="bubblewrap does not work here"):
        apply_needs(item)
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="bubblewrap does not work here"):
        apply_needs(item)


def test_the_suite_registers_its_markers_strictly():
    import tomllib

    options = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "--strict-markers" in options["addopts"].split()
    assert {marker.split(":")[0].split("(")[0] for marker in options["markers"]} == {"slow", "needs"}


def _daemon(pid_file: Path) -> subprocess.Popen:
    proc = subprocess.Popen(["sleep", "120"])
    pid_file.write_text(f"{proc.pid}\n")
    return proc


def test_only_the_daemons_started_after_the_snapshot_are_stopped(tmp_path):
    running, started, stale = tmp_path / "running.pid", tmp_path / "started.pid", tmp_path / "stale.pid"
    stale.write_text("999999999\n")  # a pid file left by a daemon that died earlier
    before = _daemon(running)
    snapshot = Daemons.snapshot((running, started, stale))
    assert snapshot.before == (before.pid, None, None)
    after = _daemon(started)
    try:
        assert snapshot.stop_started(grace_s=5) == [after.pid]
        assert after.wait(timeout=5) is not None and live_pid(started) is None
        assert before.poll() is None and live_pid(running) == before.pid  # the cluster that was up stays up
    finally:
        for proc in (before, after):
            proc.kill()
            proc.wait()


def test_a_daemon_restarted_by_the_script_was_up_before_and_stays_up(tmp_path):
    pid_file = tmp_path / "slurmctld.pid"
    first = _daemon(pid_file)
    snapshot = Daemons.snapshot((pid_file,))
    first.kill()
    first.wait()
    restarted = _daemon(pid_file)  # slurm-up.sh restarts the daemons when slurm.conf changed
    try:
        assert snapshot.stop_started(grace_s=5) == [] and restarted.poll() is None
    finally:
        restarted.kill()
        restarted.wait()


def test_no_test_skips_or_reads_ci_on_its_own():
    """Every skip goes through tests/ci.py, so none can hide a missing part under CI."""
    forbidden = ("pytest.skip(", ".skipif(", "importorskip(", 'environ.get("CI"', "environ['CI']", 'environ["CI"]')
    tests = Path(__file__).parent
    offenders = [f"{path.name}:{number}" for path in sorted(tests.rglob("*.py"))
                 if path.name not in ("ci.py", "test_ci_helpers.py")
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if any(word in line for word in forbidden)]
    assert offenders == [], "use tests.ci.unavailable or tests.ci.needs instead"
