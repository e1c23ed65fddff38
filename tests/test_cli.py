"""main.py as a researcher runs it: subprocesses, real config, real exit codes and messages."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seidr.config import REPO_ROOT
from seidr.result import JobResult


def run_main(*overrides: str, env: dict[str, str] | None = None, data_dir: Path | None = None,
             output_root: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    # W&B and the git archive have tests of their own (test_tracking.py); elsewhere they only cost time
    quiet = [] if any(o.startswith("tracking") for o in overrides) else ["tracking=none"]
    args = [sys.executable, str(REPO_ROOT / "main.py"), *overrides, *quiet]
    if data_dir is not None:
        args.append(f"paths.data_dir={data_dir}")
    if output_root is not None:
        args.append(f"paths.output_root={output_root}")
    full_env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "DATA_PATH")}
    full_env.update(env or {})
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=REPO_ROOT)


def assert_one_clear_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    line = next(line for line in proc.stderr.splitlines() if line.startswith("seidr: error:"))
    for needle in needles:
        assert needle in line, (needle, proc.stderr)
    return line


def test_unknown_problem_lists_the_valid_names(data_dir, tmp_path):
    proc = run_main("problem=bowlin", data_dir=data_dir, output_root=tmp_path)
    assert_one_clear_error(proc, "'bowlin'", "valid names: basement, ", "bowling", "fizz-buzz",
                           "vector-distance")


def test_unknown_humaneval_problem(data_dir, tmp_path):
    proc = run_main("dataset=humaneval", "problem=HumanEval/500", data_dir=data_dir, output_root=tmp_path)
    assert_one_clear_error(proc, "'HumanEval/500'", "HumanEval/0 … HumanEval/163")


def test_missing_data_folder_says_where_it_looked_and_how_to_set_it(tmp_path):
    proc = run_main(data_dir=tmp_path / "no-data", output_root=tmp_path)
    assert_one_clear_error(proc, str(tmp_path / "no-data"), "DATA_PATH")


def test_missing_api_key_names_the_fix(data_dir, tmp_path):
    proc = run_main("model=openai", data_dir=data_dir, output_root=tmp_path)
    assert_one_clear_error(proc, "OPENAI_API_KEY")


def test_bad_override_is_rejected_by_hydra_without_traceback(data_dir, tmp_path):
    proc = run_main("search.max_programz=3", data_dir=data_dir, output_root=tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and "max_programz" in proc.stderr


def test_unsupported_language_is_explained(data_dir, tmp_path):
    proc = run_main("language=rust", "model=openai", "model.api_key=x", data_dir=data_dir, output_root=tmp_path)
    assert_one_clear_error(proc, "language=rust")


FIZZ_BUZZ_WRONG = "```python\nx = int(input())\nprint('Fizz' if x % 3 == 0 else x)\n```"
FIZZ_BUZZ_RIGHT = (
    "```python\nx = int(input())\n"
    "print('FizzBuzz' if x % 15 == 0 else 'Fizz' if x % 3 == 0 else 'Buzz' if x % 5 == 0 else x)\n```"
)


def seidr_reply(messages, body, index=0):
    """Drafts are wrong; an explanation is a sentence; repairs are right."""
    text = messages[-1]["content"]
    if "Do not write code" in text:
        return "It never prints Buzz or FizzBuzz."
    if "What is wrong, according to a review" in text:
        return FIZZ_BUZZ_RIGHT
    return FIZZ_BUZZ_WRONG


def read_run(output_root: Path) -> tuple[dict, list[dict]]:
    [result_path] = list(output_root.rglob("result.json"))
    programs = [json.loads(line) for line in (result_path.parent / "programs.jsonl").read_text().splitlines()]
    return json.loads(result_path.read_text()), programs


def test_openai_backend_end_to_end_draft_explain_repair(data_dir, tmp_path):
    from tests.servers.openai_server import OpenAIServer

    with OpenAIServer(seidr_reply, model="gpt-test") as server:
        proc = run_main("problem=fizz-buzz", "model=openai", "model.name=gpt-test", f"model.base_url={server.base_url}",
                        "search.max_programs=20", data_dir=data_dir, output_root=tmp_path,
                        env={"OPENAI_API_KEY": "sk-from-env"})
    assert proc.returncode == 0, proc.stderr
    result, programs = read_run(tmp_path)
    assert result["solved"] and result["test_pass_rate"] == 1.0 and result["model"] == "gpt-test"
    assert [p["kind"] for p in programs][:2] == ["draft", "draft"] and programs[-1]["kind"] == "repair"
    assert programs[-1]["explanation"] == "It never prints Buzz or FizzBuzz." and programs[-1]["parent_id"] in (0, 1)
    assert programs[-1]["val_score"] == 1.0 and len(programs[-1]["passed"]) == 50
    assert 0 < programs[0]["val_score"] < 1 and result["programs"] == len(programs) <= 20
    assert result["llm_calls"] >= 4 and result["prompt_tokens"] > 0 and result["completion_tokens"] > 0
    assert all(r.headers["authorization"] == "Bearer sk-from-env" for r in server.posts("/v1/chat/completions"))
    assert "solved" in proc.stdout
    # result.json holds JobResult's fields, in its order, and nothing else
    assert list(result) == [item.name for item in dataclasses.fields(JobResult)]


def test_explanations_come_from_the_explain_model_and_its_spending_is_counted(data_dir, tmp_path):
    """model@explain_model=...: Instruct asks the second model, drafts and repairs the first."""
    from tests.servers.ollama_server import OllamaServer
    from tests.servers.openai_server import OpenAIServer

    def writer(messages, body, index=0):  # an explanation from this model would be a bug
        return "WRITER EXPLAINED" if "Do not write code" in messages[-1]["content"] else seidr_reply(messages, body)

    def explainer(messages, body):
        assert "Do not write code" in messages[-1]["content"], "the explain model was asked for code"
        return "It never prints Buzz or FizzBuzz."

    with OpenAIServer(writer, model="writer") as writer_server, OllamaServer(explainer) as explain_server:
        proc = run_main("problem=fizz-buzz", "model=openai", "model.name=writer", "model.api_key=k",
                        f"model.base_url={writer_server.base_url}", "model@explain_model=ollama",
                        "explain_model.name=llama3", f"explain_model.host={explain_server.host}",
                        "search.max_programs=20", data_dir=data_dir, output_root=tmp_path)
        writer_prompts = [r.body["messages"][-1]["content"] for r in writer_server.posts("/v1/chat/completions")]
        explain_calls = len(explain_server.posts("/api/chat"))
    assert proc.returncode == 0, proc.stderr
    result, programs = read_run(tmp_path)
    assert result["solved"] and programs[-1]["kind"] == "repair"
    assert programs[-1]["explanation"] == "It never prints Buzz or FizzBuzz."
    assert explain_calls >= 1 and not any("Do not write code" in text for text in writer_prompts)
    # the job's totals are both models' together; the explain model's share is its own
    assert result["model"] == "writer" and result["explain_model"] == "llama3"
    # (one call for n explanations: Ollama is asked once per sample, so it saw at least as many requests)
    assert 1 <= result["explain_llm_calls"] <= explain_calls
    assert result["llm_calls"] == len(writer_prompts) + result["explain_llm_calls"]
    assert 0 < result["explain_completion_tokens"] < result["completion_tokens"]


def test_ollama_backend_end_to_end(data_dir, tmp_path):
    from tests.servers.ollama_server import OllamaServer

    with OllamaServer(lambda messages, body: seidr_reply(messages, body)) as server:
        proc = run_main("problem=fizz-buzz", "model=ollama", "model.name=llama3", f"model.host={server.host}",
                        "search.max_programs=20", data_dir=data_dir, output_root=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result, programs = read_run(tmp_path)
    assert result["solved"] and result["model"] == "llama3" and programs[-1]["kind"] == "repair"


def test_budget_spent_without_a_solution(data_dir, tmp_path):
    from tests.servers.openai_server import OpenAIServer

    with OpenAIServer(lambda messages, body, index: FIZZ_BUZZ_WRONG) as server:
        proc = run_main("problem=fizz-buzz", "model=openai", "model.name=test-model", "model.api_key=k",
                        f"model.base_url={server.base_url}", "search.max_programs=7", "selection=lexicase",
                        data_dir=data_dir, output_root=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result, programs = read_run(tmp_path)
    assert not result["solved"] and result["programs"] == len(programs) == 7 and result["selection"] == "lexicase"


# the original SEIDR's spellings (HumanEval-X ids, language=Python) name the same problem
@pytest.mark.parametrize("names", [("problem=HumanEval/0",), ("problem=Python/0", "language=Python")],
                         ids=["ours", "original-seidr"])
def test_humaneval_problem_end_to_end(data_dir, tmp_path, names):
    from tests.servers.openai_server import OpenAIServer

    solution = ("```python\nfrom typing import List\n\ndef has_close_elements(numbers: List[float], threshold: float)"
                " -> bool:\n    return any(abs(a - b) < threshold for i, a in enumerate(numbers)"
                " for b in numbers[i + 1:])\n```")
    with OpenAIServer(lambda messages, body, index: solution) as server:
        proc = run_main("dataset=humaneval", *names, "model=openai", "model.name=test-model",
                        "model.api_key=k", f"model.base_url={server.base_url}", data_dir=data_dir,
                        output_root=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result, _ = read_run(tmp_path)
    assert result["problem"] == "HumanEval/0" and result["language"] == "python"
    assert result["solved"] and result["test_pass_rate"] == 1.0 and result["split"] == "heldout"
    assert result["valid_examples"] + result["test_examples"] == 7


def test_server_failing_mid_run_keeps_every_program_and_says_why(data_dir, tmp_path):
    from tests.servers.openai_server import OpenAIServer

    with OpenAIServer(lambda messages, body, index: FIZZ_BUZZ_WRONG) as server:
        # drafts succeed; from the first explanation on, the server only fails
        original_route = server.route

        def route(method, path, body):
            if method == "POST" and "Do not write code" in body["messages"][-1]["content"]:
                return 500, {"error": {"message": "server on fire"}}, {}
            return original_route(method, path, body)

        server.route = route
        proc = run_main("problem=fizz-buzz", "model=openai", "model.name=test-model", "model.api_key=k",
                        f"model.base_url={server.base_url}", "model.max_retries=1", data_dir=data_dir,
                        output_root=tmp_path)
    line = assert_one_clear_error(proc, "500", server.base_url)
    result, programs = read_run(tmp_path)
    assert len(programs) == 2 and result["programs"] == 2 and result["stopped"] == "error"
    assert result["error"] in line and result["best_program"] == programs[0]["code"]
    # said once on the console (not again as a log line), and kept in the job's main.log
    console = proc.stdout + proc.stderr
    assert console.count(result["error"][:60]) == 1, console[-3000:]
    [log_file] = tmp_path.rglob("main.log")
    assert result["error"][:60] in log_file.read_text()


def test_cpp_end_to_end(data_dir, tmp_path):
    from tests.servers.openai_server import OpenAIServer

    fizz_buzz = ("```cpp\n#include <iostream>\nint main() { long x; std::cin >> x;\n"
                 "  if (x % 15 == 0) std::cout << \"FizzBuzz\"; else if (x % 3 == 0) std::cout << \"Fizz\";\n"
                 "  else if (x % 5 == 0) std::cout << \"Buzz\"; else std::cout << x;\n  std::cout << std::endl; }\n```")
    with OpenAIServer(lambda messages, body, index: fizz_buzz) as server:
        proc = run_main("problem=fizz-buzz", "language=cpp", "model=openai", "model.name=test-model",
                        "model.api_key=k", f"model.base_url={server.base_url}", data_dir=data_dir,
                        output_root=tmp_path)
        prompt = server.posts("/v1/chat/completions")[0].body["messages"][-1]["content"]
    assert proc.returncode == 0, proc.stderr
    result, programs = read_run(tmp_path)
    assert result["solved"] and result["language"] == "cpp" and result["test_pass_rate"] == 1.0
    assert "C++17" in prompt and "```cpp" in prompt


def test_cpp_refuses_python_function_tasks_clearly(data_dir, tmp_path):
    # HumanEval's C++ problems are tests/test_humaneval_cpp.py's; a Python function task stays refused
    proc = run_main("dataset=jsonl", "dataset.path=examples/tasks.jsonl", "problem=is-palindrome", "language=cpp",
                    "model=openai", "model.api_key=k", "model.base_url=http://127.0.0.1:9/v1", data_dir=data_dir,
                    output_root=tmp_path)
    assert_one_clear_error(proc, "language=cpp", "Python function task")


def test_a_job_that_failed_before_its_first_program_leaves_no_folder(data_dir, tmp_path):
    proc = run_main("problem=bowlin", data_dir=data_dir, output_root=tmp_path / "out")
    assert_one_clear_error(proc, "bowlin")
    assert proc.returncode == 2
    assert not (tmp_path / "out" / "runs").exists() or not any((tmp_path / "out" / "runs").iterdir())


@pytest.mark.parametrize("problem,language,folder", [
    ("Python/0", "python", "humaneval/HumanEval/0"), ("0", "python", "humaneval/HumanEval/0"),
    ("HumanEval/0", "python", "humaneval/HumanEval/0"), ("C++/3", "cpp", "humaneval/CPP/3"),
])
def test_a_run_folder_is_named_by_the_problem_s_canonical_id(tmp_path, problem, language, folder):
    from hydra import compose, initialize_config_dir
    from hydra.core.utils import setup_globals

    from seidr.config import CONFIG_DIR, register_resolvers

    setup_globals()  # Hydra's ${now:...}
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="config", return_hydra_config=True, overrides=[
            "dataset=humaneval", f"problem={problem}", f"language={language}", f"paths.output_root={tmp_path}"])
    assert Path(cfg.hydra.run.dir).parent == tmp_path / "runs" / folder
