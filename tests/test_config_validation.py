"""Config checked where it enters: a bad key is one line naming the key, the value and what is allowed,
exit 2, before any LLM call; aliases users of the original SEIDR write are accepted; a problem name
cannot move the run folder; a legal but suspicious split is warned about and recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seidr.app import load_problem
from seidr.config import folder_name
from seidr.errors import SeidrError
from seidr.validate import validate_config
from tests.test_cli import assert_one_clear_error, read_run, run_main

FIZZ_BUZZ_RIGHT = (
    "```python\nx = int(input())\n"
    "print('FizzBuzz' if x % 15 == 0 else 'Fizz' if x % 3 == 0 else 'Buzz' if x % 5 == 0 else x)\n```"
)


@pytest.mark.parametrize("override, needles", [
    ("model.temperature=abc", ["model.temperature", "'abc'", "number from 0 to 2"]),
    ("search.max_programs=0", ["search.max_programs must be an integer ≥ 1, not 0"]),
    ("search.max_programs=-5", ["search.max_programs must be an integer ≥ 1, not -5"]),
    ("search.branching_factor=0", ["search.branching_factor must be an integer ≥ 1, not 0"]),
    ("search.branching_factor=-1", ["search.branching_factor must be an integer ≥ 1, not -1"]),
    ("search.valid_examples=0", ["search.valid_examples", "≥ 1", "not 0"]),
    ("model.max_tokens=0", ["model.max_tokens", "≥ 1"]),
    ("execution.workers=0", ["execution.workers", "≥ 1 or null"]),
    ("execution.isolation=docker", ["execution.isolation", "auto, namespace, process", "'docker'"]),
    ("execution.limits.test_timeout_s=-1", ["execution.limits.test_timeout_s", "> 0", "-1"]),
    ("execution.limits.total_timeout_s=inf",
     ["execution.limits.total_timeout_s must be a number > 0 and ≤ 86400, not inf"]),
    ("execution.limits.memory_mb=99999999999",
     ["execution.limits.memory_mb must be an integer from 1 to 1,048,576, not 99999999999"]),
    ("execution.limits.max_processes=10000000000",
     ["execution.limits.max_processes must be an integer from 1 to 4,194,304"]),
    ("execution.limits.open_files=99999999", ["execution.limits.open_files must be an integer from 1 to 1,048,576"]),
    ("execution.limits.test_timeout_s=1e300", ["execution.limits.test_timeout_s must be a number > 0 and ≤ 86400"]),
    ("model.timeout_s=inf", ["model.timeout_s must be a number > 0 and ≤ 86400, not inf"]),
])
def test_bad_value_is_one_line_exit_2_and_no_llm_call(data_dir, tmp_path, override, needles):
    from tests.servers.openai_server import OpenAIServer

    with OpenAIServer(lambda messages, body, index: FIZZ_BUZZ_RIGHT) as server:
        proc = run_main(override, "model=openai", "model.name=test-model", "model.api_key=k",
                        f"model.base_url={server.base_url}", data_dir=data_dir, output_root=tmp_path)
        calls = server.posts("/v1/chat/completions")
    assert proc.returncode == 2
    assert_one_clear_error(proc, *needles)
    assert calls == [] and not list(tmp_path.rglob("programs.jsonl"))


@pytest.mark.parametrize("overrides, needle", [
    (["search.drafts_per_prompt=0"], "search.drafts_per_prompt must be an integer ≥ 1, not 0"),
    (["search.explanations_per_program=0"], "search.explanations_per_program must be an integer ≥ 1"),
    (["search.repairs_per_explanation=-2"], "search.repairs_per_explanation must be an integer ≥ 1, not -2"),
    (["search.beam_width=0"], "search.beam_width must be an integer ≥ 1"),
    (["search.max_programs=2.5"], "search.max_programs must be an integer ≥ 1, not 2.5"),
    (["search.test_examples=-1"], "search.test_examples must be an integer ≥ 0"),
    (["search.prompt_examples=-1"], "search.prompt_examples must be an integer ≥ 0"),
    (["search.greedy_first_draft=maybe"], "search.greedy_first_draft must be true or false, not 'maybe'"),
    (["search.bad_replies=ignore"], "search.bad_replies must be one of keep, drop"),
    (["search.debug_prompt_id=11"], "search.debug_prompt_id must be an integer from 0 to 10"),
    (["model.temperature=2.5"], "model.temperature must be a number from 0 to 2, not 2.5"),
    (["model.temperature=-0.1"], "model.temperature must be a number from 0 to 2"),
    (["model.max_concurrency=0"], "model.max_concurrency must be an integer ≥ 1"),
    (["model.temperature_schedule=hot"], "model.temperature_schedule must be one of fixed, ramp"),
    (["model=openai", "model.timeout_s=0"], "model.timeout_s must be a number > 0 and ≤ 86400, not 0"),
    (["model=ollama", "model.max_retries=-1"], "model.max_retries must be an integer ≥ 0, not -1"),
    (["execution.limits.memory_mb=0"], "execution.limits.memory_mb must be an integer from 1 to 1,048,576, not 0"),
    (["execution.limits.test_cpu_s=0.5"], "execution.limits.test_cpu_s must be an integer from 1 to 86,400, not 0.5"),
    (["+execution.limits.gpu=1"], "execution.limits.gpu is not a limit"),
    (["execution.float_tolerance=-1"], "execution.float_tolerance must be a number ≥ 0"),
    (["seed=abc"], "seed must be an integer, not 'abc'"),
    (["model@explain_model=local-1.5b", "explain_model.temperature=3"],
     "explain_model.temperature must be a number from 0 to 2, not 3"),
    (["model@explain_model=ollama", "explain_model.max_retries=-1"], "explain_model.max_retries must be an integer ≥ 0"),
    (["language=rust"], "language=rust is not supported; use python or cpp"),
])
def test_every_key_is_checked_with_its_allowed_values(compose_cfg, overrides, needle):
    with pytest.raises(SeidrError) as error:
        validate_config(compose_cfg(*overrides))
    assert needle in str(error.value) and "\n" not in str(error.value)


def test_a_key_that_follows_a_bad_one_is_not_reported_again(compose_cfg):
    # drafts, repairs and beam width are ${.branching_factor}: one cause, one message
    with pytest.raises(SeidrError) as error:
        validate_config(compose_cfg("search.branching_factor=0"))
    assert str(error.value) == "search.branching_factor must be an integer ≥ 1, not 0"


@pytest.mark.parametrize("overrides", [
    [], ["model=openai"], ["model=ollama"], ["model=gpt-3.5-turbo"], ["search=greedy"], ["search=resample"],
    ["selection=lexicase"], ["tracking=none"], ["language=cpp"], ["dataset=humaneval"], ["dataset=jsonl"],
    ["model.temperature=0"], ["model.temperature=2"], ["execution.workers=3"], ["search.test_examples=0"],
    ["model@explain_model=local-1.5b"], ["model=openai", "model@explain_model=ollama"],
])
def test_shipped_configs_pass(compose_cfg, overrides):
    validate_config(compose_cfg(*overrides))


def test_the_explain_model_is_a_model_of_its_own(compose_cfg):
    """A model config placed at explain_model reads its own keys, not the writing model's."""
    assert "explain_model" not in compose_cfg()
    cfg = compose_cfg("model@explain_model=local-1.5b", "explain_model.n_ctx=2048", "model.parallel=3")
    writer, explainer = cfg.model.backend, cfg.explain_model.backend
    assert (writer.embedded, writer.n_ctx, writer.parallel) == ("qwen2.5-coder-0.5b-instruct", 4096, 3)
    assert (explainer.embedded, explainer.n_ctx, explainer.parallel) == ("qwen2.5-coder-1.5b-instruct", 2048, 8)
    assert (cfg.model.max_concurrency, cfg.explain_model.max_concurrency) == (3, 8)


@pytest.mark.parametrize("given, canonical", [("Python", "python"), ("PYTHON", "python"), ("C++", "cpp"),
                                              ("c++", "cpp"), ("CPP", "cpp"), ("cpp", "cpp")])
def test_language_is_accepted_as_the_original_seidr_writes_it(compose_cfg, given, canonical):
    cfg = compose_cfg(f"language={given}", "dataset=humaneval")
    validate_config(cfg)
    assert cfg.language == canonical and cfg.dataset.language == canonical


def test_humaneval_x_python_ids_and_cpp_ids_load(compose_cfg):
    cfg = compose_cfg("dataset=humaneval", "language=Python", "problem=Python/3")
    validate_config(cfg)
    assert load_problem(cfg).name == "HumanEval/3"
    cfg = compose_cfg("dataset=humaneval", "language=C++", "problem=CPP/3")
    validate_config(cfg)
    assert load_problem(cfg).name == "CPP/3"
    # a C++ id with language=python is named as such, not silently run as the Python problem
    with pytest.raises(SeidrError, match="add language=cpp"):
        load_problem(compose_cfg("dataset=humaneval", "problem=CPP/3"))


def test_folder_name_keeps_nested_ids_and_drops_climbing_parts():
    assert folder_name("HumanEval/0") == "HumanEval/0"
    assert folder_name("a/../../b") == "a/b"
    assert folder_name("/etc/passwd") == "etc/passwd"
    assert folder_name("..\\..\\x") == "x"
    assert folder_name("..") == "_"
    assert folder_name(7) == "7"


def test_problem_name_cannot_move_the_run_folder(data_dir, tmp_path):
    output_root = tmp_path / "out"
    proc = run_main("problem=a/../../b", data_dir=data_dir, output_root=output_root)
    assert_one_clear_error(proc, "a/../../b", "valid names")
    # the job failed before its first program, so it leaves no folder; where it ran comes from Hydra
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
    from hydra import compose, initialize_config_dir
    from hydra.core.utils import setup_globals

    from seidr.config import CONFIG_DIR, register_resolvers

    setup_globals()  # Hydra's ${now:...}
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="config", return_hydra_config=True,
                      overrides=["problem=a/../../b", f"paths.output_root={output_root}"])
    run_dir = Path(cfg.hydra.run.dir)
    assert run_dir.parent == output_root / "runs" / "psb2" / "a" / "b" and ".." not in run_dir.parts


def write_psb2(root: Path, name: str, edge: list, random_rows: list) -> Path:
    """A one-problem PSB2 folder; rows are dicts (written as JSON) or raw bytes lines."""
    folder = root / "psb2" / "datasets" / name
    folder.mkdir(parents=True)
    (root / "psb2" / "descriptions.json").write_text(json.dumps({name: "Print the number read."}))
    for kind, rows in (("edge", edge), ("random", random_rows)):
        lines = [row if isinstance(row, bytes) else json.dumps(row).encode() for row in rows]
        (folder / f"{name}-{kind}.json").write_bytes(b"".join(line + b"\n" for line in lines))
    return folder


def test_bad_psb2_bytes_are_one_clear_error_with_the_line(tmp_path):
    folder = write_psb2(tmp_path / "data", "echo", [{"input1": 1, "output1": 1}],
                        [{"input1": 2, "output1": 2}, {"input1": 3, "output1": 3}, b'{"input1": "\xff", "output1": 1}'])
    proc = run_main("problem=echo", data_dir=tmp_path / "data", output_root=tmp_path / "out")
    assert proc.returncode == 2
    assert_one_clear_error(proc, f"{folder / 'echo-random.json'} line 3: not valid UTF-8")


def test_too_many_validation_examples_is_warned_and_recorded(tmp_path):
    from tests.servers.openai_server import OpenAIServer

    echo = "```python\nprint(input())\n```"
    write_psb2(tmp_path / "data", "echo", [{"input1": 1, "output1": 1}],
               [{"input1": n, "output1": n} for n in range(2, 6)])
    with OpenAIServer(lambda messages, body, index: echo) as server:
        proc = run_main("problem=echo", "search.valid_examples=100000", "model=openai", "model.name=test-model",
                        "model.api_key=k", f"model.base_url={server.base_url}",
                        data_dir=tmp_path / "data", output_root=tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    result, _ = read_run(tmp_path / "out")
    assert result["valid_examples"] == 5 and result["test_examples"] == 0 and result["test_pass_rate"] is None
    assert any("search.valid_examples=100000" in w and "only 5" in w for w in result["warnings"])
    assert any("no test examples" in w for w in result["warnings"])
    log = next((tmp_path / "out").rglob("main.log")).read_text()
    assert "WARNING" in log and "search.valid_examples=100000" in log


def test_an_ordinary_run_records_no_warnings(compose_cfg):
    from seidr.validate import problem_warnings

    cfg = compose_cfg()
    assert problem_warnings(load_problem(cfg), int(cfg.search.test_examples)) == []


@pytest.mark.parametrize("override, needles", [
    ("search.max_program=5", ["search.max_program is not a key of search", "did you mean search.max_programs?"]),
    ("+search.max_program=5", ["search.max_program is not a key of search", "did you mean search.max_programs?"]),
    ("execution.limits.memory_mbb=5", ["did you mean execution.limits.memory_mb?"]),
    ("explain_model.temprature=0.5", ["explain_model.temprature is not a key of explain_model",
                                      "did you mean explain_model.temperature?"]),
    ("model=opnai", ["model=opnai is not an option of model", "did you mean model=openai?", "local"]),
    ("search=seidr_beam", ["search=seidr_beam is not an option of search", "did you mean search=seidr?"]),
    ("problme=gcd", ["problme is not a key of seidr's config", "did you mean problem?"]),
])
def test_a_misspelled_key_or_option_is_one_line_with_the_closest_valid_one(data_dir, tmp_path, override, needles):
    proc = run_main(override, data_dir=data_dir, output_root=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert_one_clear_error(proc, *needles)
    assert not (tmp_path / "runs").exists()


def test_a_misspelled_option_in_a_sweep_is_refused_before_any_job(data_dir, tmp_path):
    proc = run_main("-m", "model=openai,opnai", "problem=fizz-buzz", data_dir=data_dir, output_root=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert_one_clear_error(proc, "model=opnai is not an option of model", "did you mean model=openai?")
    assert not (tmp_path / "multiruns").exists()


@pytest.mark.parametrize("overrides", [
    ["+llm_prices.my-model={prompt: 1.0, completion: 2.0}", "model=openai", "model.api_key=k", "model.name=my-model"],
    ["model@explain_model=local-1.5b", "explain_model.n_ctx=2048", "resume.repair=true"],
    ["tracking=none", "model.backend._target_=tests.test_sweep_faults.BuggyBackend"],
])
def test_real_keys_and_options_are_not_refused(overrides):
    from seidr.config import CONFIG_DIR, REPO_ROOT
    from seidr.config_keys import check_overrides

    assert check_overrides(["-m", *overrides], CONFIG_DIR, REPO_ROOT) is None


def test_a_config_error_hydra_finds_exits_2(data_dir, tmp_path):
    proc = run_main("search.max_programs=[1", data_dir=data_dir, output_root=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
