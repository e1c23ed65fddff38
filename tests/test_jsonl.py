import json

import pytest

from seidr.config import REPO_ROOT
from seidr.data.jsonl import JsonlDataset
from seidr.errors import SeidrError


def write(tmp_path, lines):
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def test_the_shipped_sample_file_loads_both_kinds_of_task():
    dataset = JsonlDataset(REPO_ROOT / "examples" / "tasks.jsonl")
    assert dataset.problem_names() == ["double", "count-vowels", "is-palindrome"]
    double = dataset.load("double", seed=0)
    assert double.mode == "stdio" and double.valid[0].input == "2\n" and len(double.test) == 2
    palindrome = dataset.load("is-palindrome", seed=0)
    assert palindrome.mode == "function" and palindrome.entry_point == "is_palindrome"
    assert palindrome.split == "heldout" and len(palindrome.test) == 2


def test_without_held_out_tests_the_test_split_is_the_validation_split(tmp_path):
    path = write(tmp_path, [{"name": "t", "description": "d", "examples": [{"input": "1\n", "output": "1\n"}]}])
    problem = JsonlDataset(path).load("t", seed=0)
    assert problem.test == problem.valid and problem.split == "valid=test"


def test_every_bad_line_is_reported_with_its_number_and_reason(tmp_path):
    good = {"name": "ok", "description": "d", "examples": [{"input": "1\n", "output": "1\n"}]}
    path = write(tmp_path, [
        good,
        "{not json",
        {"name": "both", "description": "d", "examples": [{"input": "", "output": ""}], "signature": "def f(): pass"},
        {"name": "", "description": "d", "examples": []},
        {"name": "f", "signature": "def f(x):", "asserts": ["f(1) == 2"]},
        {"name": "g", "signature": "def g(x):", "asserts": ["assert g(1) == 2"], "entry_point": "h", "colour": 1},
        {"name": "ok", "description": "again", "examples": [{"input": "1\n", "output": "1\n"}]},
        {"name": "p", "description": "d", "examples": [{"input": 1, "output": "1\n"}]},
    ])
    with pytest.raises(SeidrError) as error:
        JsonlDataset(path).problem_names()
    message = str(error.value)
    assert "7 bad line(s)" in message
    for expected in ["line 2: not valid JSON", "line 3: give either", "not both", 'line 4: "name" must be',
                     'line 4: "examples" must be a non-empty list', 'line 5: "asserts"[0] has no assert',
                     "line 6: unknown key 'colour'", "line 6: \"entry_point\" 'h' is not defined",
                     "line 7: name 'ok' is used by an earlier line", 'line 8: "examples"[0] must be']:
        assert expected in message, expected
    assert "line 1" not in message


def test_unknown_task_lists_the_file_tasks(tmp_path):
    with pytest.raises(SeidrError, match="tasks there: double, count-vowels, is-palindrome"):
        JsonlDataset(REPO_ROOT / "examples" / "tasks.jsonl").load("triple", seed=0)


def test_missing_file_names_the_setting(tmp_path):
    with pytest.raises(SeidrError, match="dataset.path"):
        JsonlDataset(tmp_path / "none.jsonl").problem_names()


def test_bad_bytes_are_reported_per_line_and_the_other_lines_still_checked(tmp_path):
    good = json.dumps({"name": "ok", "description": "d", "examples": [{"input": "1\n", "output": "1\n"}]}).encode()
    path = tmp_path / "tasks.jsonl"
    path.write_bytes(b"\n".join([good, b'{"name": "caf\xe9"}', b"[1, 2]", good]) + b"\n")
    with pytest.raises(SeidrError) as error:
        JsonlDataset(path).problem_names()
    message = str(error.value)
    assert "line 2: not valid UTF-8 (byte 0xe9 at column 14)" in message
    assert "line 3: a task must be a JSON object, got a list" in message
    assert "line 4: name 'ok' is used by an earlier line" in message


def test_line_separators_inside_strings_and_a_byte_order_mark_keep_lines_whole(tmp_path):
    # U+2028 is legal unescaped inside a JSON string; str.splitlines would cut the line there
    task = {"name": "sep", "description": "one\u2028two", "examples": [{"input": "1\n", "output": "1\n"}]}
    path = tmp_path / "tasks.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(task, ensure_ascii=False).encode() + b"\n")
    assert JsonlDataset(path).tasks()["sep"]["description"] == "one\u2028two"
