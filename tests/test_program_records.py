"""A program's line in programs.jsonl: its verdicts and the feedback the explain step shows (the
worst failing test, with its input and expected output), and the program read back from it, which
is what a resumed job rebuilds its tree and prompts from."""

from __future__ import annotations

import json

from seidr.execution.base import TestOutcome
from seidr.problem import Example
from seidr.search.tree import Program

TESTS = (Example("1\n", "2\n"), Example("2\n", "4\n"), Example("3\n", "6\n"), Example("4\n", "8\n"))
OUTCOMES = (TestOutcome("pass", 1.0, actual="2\n"), TestOutcome("wrong", 0.5, actual="5\n", error="w"),
            TestOutcome("error", 0.0, actual="half", error="ZeroDivisionError"),
            TestOutcome("timeout", 0.0, actual="", error="too slow"))


def made(outcomes=OUTCOMES, **fields) -> Program:
    return Program(**{"id": 3, "parent_id": 1, "kind": "repair", "generation": 2, "code": "print(1)\n",
                      "outcomes": outcomes, "explanation": "off by one", "finish_reason": "stop",
                      "reply_issue": None, "tokens": 17, **fields})


def test_a_record_holds_the_verdicts_and_the_first_worst_failing_test():
    record = made().record(TESTS)
    assert record == {
        "id": 3, "parent_id": 1, "kind": "repair", "generation": 2, "explanation": "off by one",
        "code": "print(1)\n", "finish_reason": "stop", "reply_issue": None, "tokens": 17,
        "val_score": 0.375, "val_pass_rate": 0.25, "solved": False,
        "passed": [True, False, False, False], "scores": [1.0, 0.5, 0.0, 0.0],
        "statuses": ["pass", "wrong", "error", "timeout"],
        # the error (index 2) and the timeout (3) score 0 alike: the first of them is shown
        "feedback": {"test": 2, "actual": "half", "error": "ZeroDivisionError", "input": "3\n", "expected": "6\n"},
    }
    assert json.loads(json.dumps(record)) == record
    last = made(outcomes=OUTCOMES[:3] + (TestOutcome("memory", 0.0, error="out of memory"),),
                id=4).record(TESTS)
    assert last["feedback"]["test"] == 2
    failing_last = made(outcomes=(TestOutcome("pass", 1.0),) * 3 + (TestOutcome("wrong", 0.2, actual="9\n"),))
    assert failing_last.record(TESTS)["feedback"] == {"test": 3, "actual": "9\n", "error": "",
                                                     "input": "4\n", "expected": "8\n"}


def test_a_solved_program_has_no_feedback_and_tests_are_optional():
    solved = made(outcomes=(TestOutcome("pass", 1.0),) * 2)
    assert solved.record(TESTS)["feedback"] is None and solved.record()["solved"] is True
    assert made().record()["feedback"] == {"test": 2, "actual": "half", "error": "ZeroDivisionError"}
    assert made(outcomes=()).record()["val_score"] == 0.0 and not made(outcomes=()).solved


def test_a_program_read_back_from_its_record_is_the_same_program():
    program = made()
    again = Program.from_record(json.loads(json.dumps(program.record(TESTS))))
    assert again.scores == program.scores and [o.status for o in again.outcomes] == [o.status for o in OUTCOMES]
    # outputs are kept for the feedback test only: what the explain and repair prompts show
    assert again.outcomes[2] == OUTCOMES[2] and again.outcomes[1] == TestOutcome("wrong", 0.5)
    assert again.worst_failure() == 2
    for field in ("id", "parent_id", "kind", "generation", "code", "explanation", "finish_reason", "reply_issue",
                  "tokens"):
        assert getattr(again, field) == getattr(program, field), field


def test_an_old_record_without_the_optional_fields_still_reads():
    record = made().record(TESTS)
    for key in ("explanation", "finish_reason", "reply_issue", "tokens", "feedback"):
        del record[key]
    again = Program.from_record(record)
    assert (again.explanation, again.finish_reason, again.reply_issue, again.tokens) == (None, None, None, 0)
    assert all(o.actual == "" and o.error == "" for o in again.outcomes)


def test_the_reply_issue_and_a_bare_feedback_survive_the_round_trip():
    program = made(reply_issue="truncated", finish_reason="length")
    record = program.record(TESTS)
    record["feedback"] = {"test": 1}  # an older record kept only the index
    again = Program.from_record(record)
    assert again.reply_issue == "truncated" and again.finish_reason == "length"
    assert again.outcomes[1] == TestOutcome("wrong", 0.5, actual="", error="")


def test_feedback_names_no_input_for_a_test_beyond_the_tests_given():
    assert made().record(TESTS[:2])["feedback"] == {"test": 2, "actual": "half", "error": "ZeroDivisionError"}
