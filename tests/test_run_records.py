"""The run folder's records, in-process: what a job claims, what a rerun reads back, what it counts."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from seidr.errors import SeidrError
from seidr.execution.base import TestOutcome
from seidr.search.tree import Program
from seidr.tracking.results import RunRecorder, RunRefused, unrecorded_claim

IDENTITY = {"dataset": "psb2", "problem": "gcd", "seed": 0, "model": "m", "search": {"max_programs": 5}}


def a_program(number: int, code: str, passed: int = 1, tests: int = 2) -> Program:
    outcomes = tuple(TestOutcome("pass", 1.0) if i < passed else TestOutcome("wrong", 0.0) for i in range(tests))
    return Program(id=number, parent_id=None, kind="draft", generation=0, code=code, outcomes=outcomes)


def recorded(folder: Path, *codes: str, passed: int = 1) -> RunRecorder:
    recorder = RunRecorder(folder)
    recorder.claim(IDENTITY)
    for number, code in enumerate(codes):
        recorder.add_program(a_program(number, code, passed))
    return recorder


def test_the_first_program_claims_the_folder_once(tmp_path):
    claims = []
    recorder = RunRecorder(tmp_path / "run", on_claim=lambda: claims.append(1))
    recorder.claim(IDENTITY)
    assert not (tmp_path / "run" / "job.json").exists() and not recorder.claimed
    recorder.add_program(a_program(0, "print(0)\n"))
    recorder.add_program(a_program(1, "print(1)\n"))
    assert json.loads((tmp_path / "run" / "job.json").read_text()) == IDENTITY
    assert claims == [1] and recorder.claimed


@pytest.mark.parametrize("change", [{"problem": "luhn"}, {"seed": 1}, {"search": {"max_programs": 6}},
                                    {"extra": "key"}])
def test_a_folder_holding_another_job_is_refused_naming_what_differs(tmp_path, change):
    recorded(tmp_path / "run", "print(0)\n")
    again = RunRecorder(tmp_path / "run")
    with pytest.raises(RunRefused, match="holds a different job") as refused:
        again.claim({**IDENTITY, **change})
    [key] = change
    assert f"{key}: {IDENTITY.get(key)!r} there, {change[key]!r} now" in str(refused.value)


def test_the_same_job_claims_its_own_folder_again(tmp_path):
    recorded(tmp_path / "run", "print(0)\n")
    again = RunRecorder(tmp_path / "run")
    again.claim(IDENTITY)
    assert [p.code for p in again.earlier] == ["print(0)\n"]


def test_a_folder_from_before_job_records_is_not_marked_but_still_checked(tmp_path):
    recorded(tmp_path / "run", "print(0)\n")
    (tmp_path / "run" / "job.json").unlink()
    again = RunRecorder(tmp_path / "run")
    again.claim(IDENTITY)
    again.claim_folder()
    assert not (tmp_path / "run" / "job.json").exists()
    with pytest.raises(RunRefused, match="program 0 differs"):
        again.add_program(a_program(0, "print('other')\n"))


def test_a_job_record_that_is_not_an_object_is_named_damaged(tmp_path):
    recorded(tmp_path / "run", "print(0)\n")
    (tmp_path / "run" / "job.json").write_text("[1, 2]")
    with pytest.raises(SeidrError, match="not a JSON object"):
        RunRecorder(tmp_path / "run").claim(IDENTITY)


def test_a_recorded_program_is_checked_not_written_again(tmp_path):
    recorded(tmp_path / "run", "print(0)\n", "print(1)\n")
    again = RunRecorder(tmp_path / "run")
    again.claim(IDENTITY)
    again.add_program(a_program(0, "print(0)\n"))
    again.add_program(a_program(1, "print(1)\n"))
    again.add_program(a_program(2, "print(2)\n"))
    lines = again.programs_path.read_text().splitlines()
    assert [json.loads(line)["code"] for line in lines] == ["print(0)\n", "print(1)\n", "print(2)\n"]
    assert [p.id for p in again.recorded] == [0, 1, 2]


def result_for(recorder: RunRecorder, **claims) -> dict:
    best = max(recorder.recorded, key=lambda p: (p.score, -p.id))
    return {"programs": len(recorder.recorded), "best_program_id": best.id, "best_program": best.code,
            "val_score": best.score, "val_pass_rate": best.pass_rate, "solved": best.solved,
            "stopped": "solved" if best.solved else "budget", **claims}


def test_a_finished_job_is_read_back(tmp_path):
    recorder = recorded(tmp_path / "run", "print(0)\n")
    recorder.write_result(result_for(recorder))
    assert RunRecorder(tmp_path / "run").finished_result() == result_for(recorder)


@pytest.mark.parametrize("written", ['{"stopped": "error", "programs": 1}', "[1]", "{torn", ""])
def test_a_job_that_did_not_finish_is_not_read_as_finished(tmp_path, written):
    recorded(tmp_path / "run", "print(0)\n")
    (tmp_path / "run" / "result.json").write_text(written)
    assert RunRecorder(tmp_path / "run").finished_result() is None


def test_a_result_counting_more_programs_than_recorded_runs_the_job_again(tmp_path, caplog):
    recorder = recorded(tmp_path / "run", "print(0)\n", "print(1)\n")
    recorder.write_result(result_for(recorder))
    lines = recorder.programs_path.read_text().splitlines(keepends=True)
    recorder.programs_path.write_text(lines[0])
    with caplog.at_level(logging.WARNING, logger="seidr"):
        assert RunRecorder(tmp_path / "run").finished_result() is None
    assert "counts 2 programs but" in caplog.text and "holds 1" in caplog.text
    recorder.programs_path.write_text("".join(lines))
    assert RunRecorder(tmp_path / "run").finished_result() is not None


def test_pending_trackers_are_read_back(tmp_path):
    recorder = RunRecorder(tmp_path / "run")
    assert recorder.pending_tracking(["wandb", "git"]) == ()
    recorder.set_pending_tracking(["git"])
    assert recorder.pending_tracking(["wandb", "git"]) == ("git",)
    recorder.tracking_path.write_text("{torn")
    assert recorder.pending_tracking(["wandb", "git"]) == ("wandb", "git")  # finishing twice is harmless
    recorder.tracking_path.write_text('{"other": 1}')
    assert recorder.pending_tracking(["wandb"]) == ("wandb",)
    recorder.set_pending_tracking([])
    assert not recorder.tracking_path.exists() and recorder.pending_tracking(["git"]) == ()


def test_a_line_torn_by_a_kill_is_cut_and_made_again(tmp_path):
    recorder = recorded(tmp_path / "run", "print(0)\n", "print(1)\n")
    whole = recorder.programs_path.read_bytes()
    recorder.programs_path.write_bytes(whole + b'{"id": 2, "co')
    again = RunRecorder(tmp_path / "run")
    assert [p.id for p in again.earlier] == [0, 1]
    assert again.programs_path.read_bytes() == whole


@pytest.mark.parametrize("line, reason", [
    (b"\xff\xfe\n", "not UTF-8 text"),
    (b"{torn\n", "not JSON"),
    (b"[1]\n", "not a JSON object"),
    (b'{"id": 1}\n', "no 'statuses' field"),
])
def test_a_damaged_line_is_named_with_its_number_and_reason(tmp_path, line, reason):
    recorder = recorded(tmp_path / "run", "print(0)\n")
    recorder.programs_path.write_bytes(recorder.programs_path.read_bytes() + line)
    with pytest.raises(SeidrError, match=rf"line 2 is damaged \({reason}"):
        RunRecorder(tmp_path / "run")


def test_a_program_out_of_its_place_is_damage(tmp_path):
    recorder = recorded(tmp_path / "run", "print(0)\n", "print(1)\n")
    first, second = recorder.programs_path.read_bytes().splitlines(keepends=True)
    recorder.programs_path.write_bytes(second + first)
    with pytest.raises(SeidrError, match=r"line 1 is damaged \(program id 1 where 0 was expected\).* and the 1 line "
                                         r"after it"):
        RunRecorder(tmp_path / "run")


def test_repair_moves_a_damaged_line_and_all_after_it_aside(tmp_path, caplog):
    recorder = recorded(tmp_path / "run", "print(0)\n", "print(1)\n", "print(2)\n")
    first, second, third = recorder.programs_path.read_bytes().splitlines(keepends=True)
    recorder.programs_path.write_bytes(first + b"{damaged\n" + third)
    with caplog.at_level(logging.WARNING, logger="seidr"):
        again = RunRecorder(tmp_path / "run", repair=True)
    assert [p.id for p in again.earlier] == [0]
    assert again.programs_path.read_bytes() == first
    assert again.dropped_path.read_bytes() == b"{damaged\n" + third
    assert "line 2 was damaged" in caplog.text and "and the 1 line after it" in caplog.text


def test_usage_adds_up_over_the_runs_of_a_job(tmp_path):
    recorder = RunRecorder(tmp_path / "run")
    assert recorder.total_usage(3, None) == {"llm_calls": 3, "cost_usd": None}
    recorder.record_usage(3, 0.25)
    again = RunRecorder(tmp_path / "run")
    assert again.total_usage(2, 0.5) == {"llm_calls": 5, "cost_usd": 0.75}
    assert again.total_usage(2, None) == {"llm_calls": 5, "cost_usd": 0.25}  # the earlier runs' cost stays
    recorder.record_usage(4, None)
    assert RunRecorder(tmp_path / "run").total_usage(1, 0.1) == {"llm_calls": 5, "cost_usd": 0.1}


def test_a_result_without_programs_claims_nothing():
    assert unrecorded_claim({"programs": 0, "best_program_id": None, "solved": False}, []) is None
    assert "best program" in unrecorded_claim({"programs": 0, "best_program_id": None, "solved": True}, [])
    assert "best program" in unrecorded_claim({"programs": 0, "best_program_id": 0, "solved": False}, [])


def test_ties_go_to_the_earlier_program_as_the_search_ranks_them(tmp_path):
    recorder = recorded(tmp_path / "run", "print(0)\n", "print(1)\n")  # same score
    assert unrecorded_claim(result_for(recorder), recorder.recorded) is None
    assert result_for(recorder)["best_program_id"] == 0
    claimed_later = {**result_for(recorder), "best_program_id": 1, "best_program": "print(1)\n"}
    assert "not the recorded best" in unrecorded_claim(claimed_later, recorder.recorded)


@pytest.mark.parametrize("claims", [{"val_pass_rate": 1.0}, {"solved": True}])
def test_figures_of_an_unsolved_best_cannot_be_raised(tmp_path, claims):
    recorder = recorded(tmp_path / "run", "print(0)\n", passed=1)
    assert unrecorded_claim(result_for(recorder, **claims), recorder.recorded) is not None


def test_after_a_refused_write_nothing_more_is_appended(tmp_path):
    recorder = recorded(tmp_path / "run", "print(0)\n")
    recorder.programs_path.unlink()
    recorder.programs_path.mkdir()  # every append fails, for root too
    with pytest.raises(SeidrError) as first:
        recorder.add_program(a_program(1, "print(1)\n"))
    recorder.programs_path.rmdir()  # writable again: still refused, or a line would be missing
    with pytest.raises(SeidrError) as second:
        recorder.add_program(a_program(2, "print(2)\n"))
    assert second.value is first.value and not recorder.programs_path.exists()
    assert [p.id for p in recorder.recorded] == [0]


def test_a_damaged_last_line_names_no_lines_after_it(tmp_path):
    recorder = recorded(tmp_path / "run", "print(0)\n")
    recorder.programs_path.write_bytes(recorder.programs_path.read_bytes() + b"{torn\n")
    with pytest.raises(SeidrError) as refused:
        RunRecorder(tmp_path / "run")
    assert "after it" not in str(refused.value) and "line 2 is damaged (not JSON" in str(refused.value)


def test_repair_says_why_the_line_was_dropped(tmp_path, caplog):
    recorder = recorded(tmp_path / "run", "print(0)\n")
    recorder.programs_path.write_bytes(recorder.programs_path.read_bytes() + b"[1]\n")
    with caplog.at_level(logging.WARNING, logger="seidr"):
        RunRecorder(tmp_path / "run", repair=True)
    [warning] = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert warning.startswith("programs.jsonl line 2 was damaged (not a JSON object): it moved to ")
    assert "after it" not in warning


def blocked(path: Path) -> None:
    """Make writing `path` fail for any user, root included: a folder stands where the file goes."""
    path.unlink(missing_ok=True)
    path.mkdir()


@pytest.mark.parametrize("write, name", [
    (lambda r: r.record_usage(1, None), "llm_usage.json"),
    (lambda r: r.set_pending_tracking(["git"]), "tracking_pending.json"),
    (lambda r: r.write_result(result_for(r)), "result.json"),
])
def test_a_refused_write_names_the_file_it_could_not_write(tmp_path, write, name):
    recorder = recorded(tmp_path / "run", "print(0)\n")
    blocked(tmp_path / "run" / name)
    with pytest.raises(SeidrError, match=rf"{name}") as refused:
        write(recorder)
    assert "Traceback" not in str(refused.value)


def test_repair_that_cannot_keep_the_dropped_lines_stops_and_cuts_nothing(tmp_path):
    recorder = recorded(tmp_path / "run", "print(0)\n")
    damaged = recorder.programs_path.read_bytes() + b"{torn\n"
    recorder.programs_path.write_bytes(damaged)
    blocked(recorder.dropped_path)
    with pytest.raises(SeidrError, match="programs.jsonl.dropped"):
        RunRecorder(tmp_path / "run", repair=True)
    assert recorder.programs_path.read_bytes() == damaged  # nothing lost


def test_a_job_record_that_cannot_be_written_stops_the_first_program(tmp_path):
    recorder = RunRecorder(tmp_path / "run")
    recorder.claim(IDENTITY)
    blocked(tmp_path / "run" / "job.json")
    with pytest.raises(SeidrError, match="job.json"):
        recorder.add_program(a_program(0, "print(0)\n"))
    assert not recorder.programs_path.exists() and not recorder.claimed


def test_repair_keeps_every_line_before_the_damaged_one(tmp_path):
    recorder = recorded(tmp_path / "run", *(f"print({n})\n" for n in range(5)))
    lines = recorder.programs_path.read_bytes().splitlines(keepends=True)
    recorder.programs_path.write_bytes(b"".join(lines[:3]) + b"{damaged\n" + lines[4])
    again = RunRecorder(tmp_path / "run", repair=True)
    assert [p.id for p in again.earlier] == [0, 1, 2]
    assert again.programs_path.read_bytes() == b"".join(lines[:3])
    assert again.dropped_path.read_bytes() == b"{damaged\n" + lines[4]


def test_a_damaged_line_counts_the_lines_after_it(tmp_path):
    recorder = recorded(tmp_path / "run", "print(0)\n", "print(1)\n", "print(2)\n")
    first, *rest = recorder.programs_path.read_bytes().splitlines(keepends=True)
    recorder.programs_path.write_bytes(b"{torn\n" + b"".join(rest))
    with pytest.raises(SeidrError, match="line 1 is damaged .* and the 2 lines after it"):
        RunRecorder(tmp_path / "run")
