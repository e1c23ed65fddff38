import gzip
import json

import pytest

from seidr.data.humaneval import HumanEvalDataset, assert_tests
from seidr.data.psb2 import PSB2Dataset
from seidr.data.psb2_format import format_values
from seidr.errors import SeidrError

PSB2_PROBLEMS = [
    "basement", "bouncing-balls", "bowling", "camel-case", "coin-sums", "cut-vector", "dice-game", "find-pair",
    "fizz-buzz", "fuel-cost", "gcd", "indices-of-substring", "leaders", "luhn", "mastermind", "middle-character",
    "paired-digits", "shopping-list", "snow-day", "solve-boolean", "spin-words", "square-digits",
    "substitution-cipher", "twitter", "vector-distance",
]


@pytest.fixture(scope="module")
def psb2(data_dir):
    return PSB2Dataset(data_dir / "psb2")


@pytest.fixture(scope="module")
def humaneval(data_dir):
    return HumanEvalDataset(data_dir / "humaneval" / "HumanEval.jsonl.gz")


def test_psb2_lists_all_25_problems(psb2):
    assert psb2.problem_names() == PSB2_PROBLEMS


@pytest.mark.parametrize("name", PSB2_PROBLEMS)
def test_every_psb2_problem_loads_with_full_splits(psb2, name):
    problem = psb2.load(name, seed=0, valid_examples=50, test_examples=2000, prompt_examples=5)
    assert problem.mode == "stdio" and problem.description
    assert len(problem.valid) == 50
    # 2000 random cases, of which 50 - (number of edge cases) went to validation
    edge_count = sum(1 for _ in (psb2.datasets_dir / name / f"{name}-edge.json").open())
    assert len(problem.test) == 2000 - max(0, 50 - edge_count)
    assert problem.prompt_examples == problem.valid[:5]
    assert all(ex.input.endswith("\n") and ex.output.endswith("\n") for ex in problem.valid + problem.test)


def test_psb2_validation_starts_with_edge_cases(psb2):
    problem = psb2.load("bowling", seed=3, valid_examples=50)
    assert problem.valid[0].input == "--------------------\n" and problem.valid[0].output == "0\n"


def test_psb2_split_is_seeded(psb2):
    first = psb2.load("gcd", seed=1)
    assert psb2.load("gcd", seed=1) == first
    other = psb2.load("gcd", seed=2)
    assert other.valid[:10] == first.valid[:10]  # the 10 edge cases do not move
    assert other.valid[10:] != first.valid[10:] and other.test != first.test


def test_gcd_description_drops_the_run_on_text(psb2):
    problem = psb2.load("gcd", seed=0)
    assert "Indices of Substring" not in problem.description and problem.description.endswith("evenly.")


def test_psb2_io_format():
    assert format_values([[1, 2, 3], 7]) == "3\n1 2 3\n7\n"
    assert format_values([[]]) == "0\n\n"
    assert format_values([True, False]) == "True\nFalse\n"
    assert format_values([0.5, [1.0, 2.25]]) == "0.5\n2\n1.0 2.25\n"
    assert format_values(["hello world", ""]) == "hello world\n\n"


def test_psb2_multi_output_example(psb2):
    problem = psb2.load("coin-sums", seed=0)
    assert problem.valid[0].input == "1\n" and problem.valid[0].output == "1\n0\n0\n0\n"


def test_missing_psb2_folder_says_where_and_how(tmp_path):
    with pytest.raises(SeidrError) as error:
        PSB2Dataset(tmp_path / "nowhere").load("gcd", seed=0)
    assert str(tmp_path / "nowhere") in str(error.value) and "DATA_PATH" in str(error.value)


def test_humaneval_has_164_problems_each_with_tests(humaneval):
    names = humaneval.problem_names()
    assert len(names) == 164 and names[0] == "HumanEval/0" and names[-1] == "HumanEval/163"
    for name in names:
        problem = humaneval.load(name, seed=0)
        assert problem.valid and problem.test and problem.mode == "function"


def test_humaneval_one_test_per_assert(humaneval):
    record = humaneval.records()["HumanEval/0"]
    snippets = assert_tests(record["test"], record["entry_point"])
    assert len(snippets) == 7
    assert all(s.count("assert") == 1 and "candidate = has_close_elements" in s for s in snippets)


def test_humaneval_heldout_split_is_disjoint_and_paper_split_shares(data_dir):
    path = data_dir / "humaneval" / "HumanEval.jsonl.gz"
    heldout = HumanEvalDataset(path, split="heldout").load("HumanEval/0", seed=0)
    assert len(heldout.valid) + len(heldout.test) == 7 and not set(heldout.valid) & set(heldout.test)
    paper = HumanEvalDataset(path, split="paper").load("HumanEval/0", seed=0)
    assert paper.valid == paper.test and len(paper.valid) == 7 and paper.split == "paper"


def test_humaneval_number_alone_is_accepted(humaneval):
    # an unknown name is tests/test_cli.py's, through main.py
    assert humaneval.load("3", seed=0).name == "HumanEval/3"


def test_humaneval_preamble_keeps_helpers_the_tests_need(humaneval):
    problem = humaneval.load("HumanEval/32", seed=0)
    assert "def poly" in problem.preamble and "def find_zero" not in problem.preamble


def small_psb2(tmp_path, edge: list, random_rows: list) -> PSB2Dataset:
    """A PSB2 folder with one problem, "echo"; a row given as bytes is written as that line."""
    folder = tmp_path / "datasets" / "echo"
    folder.mkdir(parents=True)
    (tmp_path / "descriptions.json").write_text(json.dumps({"echo": "Print the number read."}))
    for kind, rows in (("edge", edge), ("random", random_rows)):
        lines = [row if isinstance(row, bytes) else json.dumps(row).encode() for row in rows]
        (folder / f"echo-{kind}.json").write_bytes(b"".join(line + b"\n" for line in lines))
    return PSB2Dataset(tmp_path)


ROW = {"input1": 1, "output1": 1}


@pytest.mark.parametrize("bad_row, needle", [
    (b'{"input1": "\xe9t\xe9", "output1": 1}', "line 2: not valid UTF-8 (byte 0xe9 at column 13)"),
    (b'[1, 1]', "line 2: expected a JSON object with input1.. and output1.. keys, got a list"),
    (b'{"input1": 1}', "line 2: expected a JSON object with input1.. and output1.. keys, got one without output1.."),
    (b'{"input1": 1, ', "line 2: not valid JSON"),
])
def test_bad_psb2_row_names_file_and_line(tmp_path, bad_row, needle):
    dataset = small_psb2(tmp_path, [ROW], [ROW, bad_row, ROW])
    with pytest.raises(SeidrError) as error:
        dataset.load("echo", seed=0)
    assert f"{tmp_path / 'datasets' / 'echo' / 'echo-random.json'} {needle}" in str(error.value)


def test_bad_psb2_descriptions_file_names_the_line(tmp_path):
    dataset = small_psb2(tmp_path, [ROW], [ROW])
    (tmp_path / "descriptions.json").write_bytes(b'{\n"echo": "caf\xe9"}\n')
    with pytest.raises(SeidrError, match=r"descriptions.json line 2: not valid UTF-8"):
        dataset.load("echo", seed=0)


def test_psb2_empty_random_file_warns_that_no_test_split_is_left(tmp_path):
    problem = small_psb2(tmp_path, [ROW, ROW], []).load("echo", seed=0, valid_examples=50)
    assert len(problem.valid) == 2 and problem.test == ()
    assert any("echo-random.json holds no cases" in w for w in problem.warnings)
    assert any("search.valid_examples=50 but PSB2 echo has only 2 cases" in w for w in problem.warnings)


def test_psb2_short_test_split_is_warned_only_when_far_short(tmp_path):
    dataset = small_psb2(tmp_path, [ROW], [{"input1": n, "output1": n} for n in range(10)])
    assert dataset.load("echo", seed=0, valid_examples=3, test_examples=10).warnings == ()  # 8 of 10
    [warning] = dataset.load("echo", seed=0, valid_examples=3, test_examples=20).warnings
    assert "search.test_examples=20" in warning and "rests on 8" in warning


def test_problem_without_validation_examples_is_an_error(tmp_path):
    from seidr.validate import problem_warnings

    problem = small_psb2(tmp_path, [], []).load("echo", seed=0)
    with pytest.raises(SeidrError, match="no validation examples"):
        problem_warnings(problem, test_examples=2000)


def write_humaneval(tmp_path, lines: list[bytes]):
    path = tmp_path / "HumanEval.jsonl.gz"
    path.write_bytes(gzip.compress(b"".join(line + b"\n" for line in lines)))
    return HumanEvalDataset(path)


HUMANEVAL_ROW = json.dumps({"task_id": "HumanEval/0", "prompt": "def f():\n", "entry_point": "f",
                            "test": "def check(candidate):\n    assert candidate() == 1\n"}).encode()


@pytest.mark.parametrize("bad_line, needle", [
    (b'{"task_id": "HumanEval/1", "prompt": "\xff"}', "line 2: not valid UTF-8"),
    (b'["HumanEval/1"]', "line 2: expected a JSON object with task_id, prompt, test, entry_point, got a list"),
    (b'{"task_id": "HumanEval/1", "prompt": "p"}', "line 2: expected a JSON object with task_id, prompt, test, "
                                                   "entry_point; test, entry_point missing or not a string"),
])
def test_bad_humaneval_line_names_file_and_line(tmp_path, bad_line, needle):
    dataset = write_humaneval(tmp_path, [HUMANEVAL_ROW, bad_line])
    with pytest.raises(SeidrError) as error:
        dataset.problem_names()
    assert f"{tmp_path / 'HumanEval.jsonl.gz'} {needle}" in str(error.value)


def test_humaneval_file_that_is_not_gzip_is_explained(tmp_path):
    path = tmp_path / "HumanEval.jsonl.gz"
    path.write_bytes(HUMANEVAL_ROW)
    with pytest.raises(SeidrError, match="not a readable gzip file"):
        HumanEvalDataset(path).problem_names()


def test_humaneval_x_python_ids_are_humaneval_ids(humaneval):
    assert humaneval.load("Python/3", seed=0).name == "HumanEval/3"
    assert humaneval.load("humaneval/3", seed=0).name == "HumanEval/3"
    with pytest.raises(SeidrError, match="CPP/3 is a cpp problem: add language=cpp"):
        humaneval.load("CPP/3", seed=0)
