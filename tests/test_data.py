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


def test_unknown_psb2_problem_lists_valid_names(psb2):
    with pytest.raises(SeidrError) as error:
        psb2.load("bowlingg", seed=0)
    assert "bowlingg" in str(error.value) and "bowling" in str(error.value) and "vector-distance" in str(error.value)


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


def test_humaneval_number_alone_is_accepted_and_unknown_is_explained(humaneval):
    assert humaneval.load("3", seed=0).name == "HumanEval/3"
    with pytest.raises(SeidrError, match="HumanEval/0 … HumanEval/163"):
        humaneval.load("HumanEval/999", seed=0)


def test_humaneval_preamble_keeps_helpers_the_tests_need(humaneval):
    problem = humaneval.load("HumanEval/32", seed=0)
    assert "def poly" in problem.preamble and "def find_zero" not in problem.preamble
