"""HumanEval-X's C++ problems (dataset=humaneval language=cpp): splitting each test `main` into one
test per assert, compiling a program once with all its tests, verdicts through the real sandbox,
and a search that solves CPP/0 with a scripted model."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import pytest

from seidr.app import load_problem, run_problem
from seidr.data.humaneval import HumanEvalDataset, cpp_assert_tests, cpp_entry_point, split_tests
from seidr.errors import SeidrError
from seidr.execution.base import ExecutionLimits, TestOutcome
from seidr.execution.cpp import CppExecutor
from seidr.execution.cpp_scan import mask, split_test, statements
from seidr.execution.harness import NOT_RUN
from seidr.execution.sandbox import Sandbox
from seidr.problem import Example, Problem
from tests.scripted import ScriptedBackend

LIMITS = ExecutionLimits(test_timeout_s=2, test_cpu_s=2, total_timeout_s=60, compile_timeout_s=60)
A_HANDFUL = ["CPP/0", "CPP/1", "CPP/32", "CPP/38", "CPP/53", "CPP/162"]


@pytest.fixture(scope="module")
def cpp_file(data_dir) -> Path:
    path = data_dir / "humaneval" / "humaneval_cpp.jsonl.gz"
    assert path.is_file(), f"no HumanEval-X C++ data at {path} (it ships in data/)"
    return path


@pytest.fixture(scope="module")
def dataset(cpp_file) -> HumanEvalDataset:
    return HumanEvalDataset(cpp_file.with_name("HumanEval.jsonl.gz"), split="paper", language="cpp",
                            cpp_path=cpp_file)


@pytest.fixture(scope="module")
def executor() -> CppExecutor:
    return CppExecutor(Sandbox(LIMITS, isolation="auto"))


def run(executor: CppExecutor, problem: Problem, code: str, tests=None) -> list[TestOutcome]:
    """Score code the way the app does: the problem's preamble first, and given to the checker."""
    return asyncio.run(executor.run(problem.preamble + code, tests or problem.valid, "function",
                                    entry_point=problem.entry_point, signature=problem.signature,
                                    preamble=problem.preamble))


def canonical(dataset: HumanEvalDataset, name: str) -> str:
    # the prompt, not the declaration: CPP/38's declaration holds half of the body the solution repeats
    record = dataset.records()[name]
    return record["prompt"] + record["canonical_solution"]


def defaulted(dataset: HumanEvalDataset, name: str) -> str:
    """A wrong solution to any problem: the function returns a value-initialised result."""
    return dataset.records()[name]["prompt"] + "    return {};\n}\n"


def main_asserts(test_file: str) -> int:
    _, body, _ = split_test(test_file)
    return len(re.findall(r"\bassert\b", mask(body)))


# ---- splitting ----

def test_every_problem_splits_into_tests_of_one_assert_each(dataset):
    names = dataset.problem_names()
    assert len(names) == 164 and names[0] == "CPP/0" and names[-1] == "CPP/163"
    for name in names:
        record = dataset.records()[name]
        tests = cpp_assert_tests(record["test"])
        assert tests, name
        assert all(main_asserts(t) == 1 for t in tests), name
        assert len(tests) == main_asserts(record["test"]), name  # none lost (a loop's assert counts once)
        entry = cpp_entry_point(record["declaration"])
        assert entry in record["prompt"] and all(entry in t for t in tests), name


def test_setup_statements_are_kept_in_every_test_in_order(dataset):
    tests = cpp_assert_tests(dataset.records()["CPP/0"]["test"])
    assert len(tests) == 7
    setup = "vector<float> a={1.0, 2.0, 3.9, 4.0, 5.0, 2.2};"
    assert all(t.index(setup) < t.index("assert (") for t in tests)
    assert all(setup in t for t in tests)
    assert "assert (has_close_elements(a, 0.05) == false);" in tests[1]


def test_splitting_copes_with_strings_braces_comments_and_messages():
    source = (
        "#undef NDEBUG\n#include<assert.h>\nbool same(int a, int b) { return a == b; }\n"
        "int main(){\n"
        "    string s = \"a;b{c}\"; // a comment; with {braces}\n"
        "    /* assert(false); */\n"
        "    assert (f(s, '{', ';') == \"x;}\"\n"
        "            && \"failure 1\");\n"
        "    for (int i = 0; i < 3; i++) assert(same(i, i));\n"
        "    if (s.size() > 1) { s += \"}\"; } else s = \"{\";\n"
        "    do { s.pop_back(); } while (s.size() > 2);\n"
        "    assert (same(R\"(;})\"[0], ';') && \"failure 2\");\n"
        "}\n")
    tests = cpp_assert_tests(source)
    assert len(tests) == 3
    first = tests[0]
    assert first.startswith("#undef NDEBUG\n#include<assert.h>\nbool same(int a, int b)")
    assert "string s = \"a;b{c}\";" in first and "&& \"failure 1\");" in first
    assert "for (int i" not in first and "failure 2" not in first
    assert "if (s.size() > 1) { s += \"}\"; } else s = \"{\";" in first and "while (s.size() > 2);" in first
    assert "for (int i = 0; i < 3; i++) assert(same(i, i));" in tests[1]
    masked = mask(source)
    body = masked[masked.index("int main(){") + 11:masked.rindex("}")]
    assert len(statements(body, 0, len(body))) == 6


def test_names_entry_points_and_preamble(dataset):
    problem = dataset.load("3", seed=0)
    assert problem.name == "CPP/3" and problem.mode == "function" and problem.meta["language"] == "cpp"
    assert dataset.load("CPP/32", seed=0).entry_point == "find_zero"
    decode = dataset.load("CPP/38", seed=0)
    assert decode.entry_point == "decode_cyclic"
    assert "#include<string>" in decode.preamble and "using namespace std;" in decode.preamble
    assert "encode_cyclic" not in decode.preamble  # a helper is the program's to define, or redefined twice
    with pytest.raises(SeidrError, match="CPP/0 … CPP/163"):
        dataset.load("CPP/164", seed=0)
    with pytest.raises(SeidrError, match="language=cpp"):
        dataset.load("HumanEval/0", seed=0)


def test_heldout_split_is_the_python_one(cpp_file):
    heldout = HumanEvalDataset(cpp_file.with_name("HumanEval.jsonl.gz"), language="cpp").load("CPP/0", seed=0)
    tests = [Example(t) for t in cpp_assert_tests(
        HumanEvalDataset("unused", language="cpp", cpp_path=cpp_file).records()["CPP/0"]["test"])]
    valid, test = split_tests(tests, "heldout", 0)
    assert heldout.valid == tuple(valid) and heldout.test == tuple(test)
    assert len(valid) + len(test) == 7 and not set(valid) & set(test)


def test_the_config_reads_the_cpp_file_for_language_cpp(compose_cfg):
    problem = load_problem(compose_cfg("dataset=humaneval", "language=cpp", "problem=CPP/0"))
    assert problem.name == "CPP/0" and problem.entry_point == "has_close_elements"
    assert load_problem(compose_cfg("dataset=humaneval", "problem=0")).name == "HumanEval/0"


# ---- running, through the real sandbox ----

def test_canonical_solutions_pass_and_defaulted_ones_fail(dataset, executor):
    for name in A_HANDFUL:
        problem = dataset.load(name, seed=0)
        right = run(executor, problem, canonical(dataset, name))
        assert [o.status for o in right] == ["pass"] * len(problem.valid), name
        assert not all(o.passed for o in run(executor, problem, defaulted(dataset, name))), name


def test_a_failed_assert_is_a_wrong_answer_naming_the_assert_and_partial_credit_counts(dataset, executor):
    problem = dataset.load("CPP/53", seed=0)  # add(x, y)
    outcomes = run(executor, problem, "int add(int x, int y) { return x == 0 || y == 0 ? x + y : 12; }\n")
    assert [o.status for o in outcomes] == ["pass", "pass", "wrong", "pass", "pass", "wrong"]
    assert outcomes[2].error == "test assertion failed: add(2, 3) == 5 (test.cpp line 4)"
    assert outcomes[2].score == 0 and sum(o.score for o in outcomes) == 4


def test_a_reply_with_its_own_main_and_includes_still_compiles(dataset, executor):
    problem = dataset.load("CPP/53", seed=0)
    code = ("#include <bits/stdc++.h>\nusing namespace std;\nint add(int x, int y) { return x + y; }\n"
            "int main() { int a, b; cin >> a >> b; cout << add(a, b) << endl; }\n")
    assert all(o.passed for o in run(executor, problem, code))


def test_compile_errors_crashes_and_timeouts_are_verdicts(dataset, executor):
    problem = dataset.load("CPP/53", seed=0)
    outcomes = run(executor, problem, "int add(int x, int y) {\n    return x + undeclared;\n}\n")
    assert {o.status for o in outcomes} == {"compile"}
    assert "solution.cpp:2:" in outcomes[0].error and "undeclared" in outcomes[0].error  # the reply's own line
    assert outcomes[0].error.count("\n") < 15
    tests = problem.valid[:2]
    throws = "#include <vector>\nint add(int x, int y) { return x ? x + y : std::vector<int>().at(1); }\n"
    crash = run(executor, problem, throws, tests)
    assert [o.status for o in crash] == ["error", "pass"] and "out_of_range" in crash[0].error
    spins = "int add(int x, int y) { volatile int spins = 0; while (x == 0) spins++; return x + y; }\n"
    loop = run(executor, problem, spins, tests)
    # one time budget per program: after the timeout, the next test is not run
    assert [o.status for o in loop] == ["timeout", "timeout"] and loop[1].error == NOT_RUN
    exits = run(executor, problem, "#include <cstdlib>\nint add(int x, int y) { exit(3); }\n", tests[:1])
    assert exits[0].status == "error" and "status 3" in exits[0].error


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 328 compiled programs: about 5 minutes on 2 idle cores, far more under load
def test_all_164_canonical_solutions_pass_and_defaulted_ones_fail(dataset, executor):
    """All of them: CPP/22 and CPP/137 need boost::any (libboost-dev, which setup installs)."""
    async def check(name: str, slots: asyncio.Semaphore) -> str | None:
        problem = dataset.load(name, seed=0)
        async with slots:
            judged = {"entry_point": problem.entry_point, "signature": problem.signature,
                      "preamble": problem.preamble}
            right = await executor.run(problem.preamble + canonical(dataset, name), problem.valid, "function", **judged)
            wrong = await executor.run(problem.preamble + defaulted(dataset, name), problem.valid, "function", **judged)
        if not all(o.passed for o in right):
            return f"{name}: canonical fails: {next(o for o in right if not o.passed)}"
        if all(o.passed for o in wrong):
            return f"{name}: a defaulted solution passes"
        return None

    async def check_all() -> list[str]:
        slots = asyncio.Semaphore(2)
        return [e for e in await asyncio.gather(*(check(n, slots) for n in dataset.problem_names())) if e]

    assert asyncio.run(check_all()) == []


# Every header a C++ program here can include: the C++ library (all in bits/stdc++.h), the C
# library's headers, POSIX's and glibc's, and the libraries HumanEval-X links (boost::any, OpenSSL)
EVERY_HEADER = """bits/stdc++.h assert.h complex.h ctype.h errno.h fenv.h float.h inttypes.h iso646.h limits.h locale.h
math.h setjmp.h signal.h stdalign.h stdarg.h stdbool.h stddef.h stdint.h stdio.h stdlib.h string.h tgmath.h time.h
uchar.h wchar.h wctype.h aio.h alloca.h argz.h arpa/inet.h byteswap.h cpio.h crypt.h dirent.h dlfcn.h endian.h
envz.h err.h error.h execinfo.h fcntl.h fmtmsg.h fnmatch.h fstab.h ftw.h getopt.h glob.h grp.h gshadow.h iconv.h
ifaddrs.h langinfo.h libgen.h link.h malloc.h mcheck.h memory.h mntent.h monetary.h mqueue.h net/if.h netdb.h
netinet/in.h netinet/tcp.h nl_types.h obstack.h poll.h printf.h pthread.h pty.h pwd.h regex.h sched.h search.h
semaphore.h shadow.h spawn.h stdio_ext.h strings.h syslog.h tar.h termios.h threads.h ulimit.h unistd.h utime.h
utmp.h utmpx.h values.h wordexp.h sys/epoll.h sys/eventfd.h sys/file.h sys/inotify.h sys/ioctl.h sys/ipc.h
sys/mman.h sys/mount.h sys/msg.h sys/param.h sys/personality.h sys/poll.h sys/prctl.h sys/ptrace.h sys/random.h
sys/resource.h sys/select.h sys/sem.h sys/sendfile.h sys/shm.h sys/signalfd.h sys/socket.h sys/stat.h
sys/statvfs.h sys/syscall.h sys/sysinfo.h sys/sysmacros.h sys/time.h sys/timerfd.h sys/times.h sys/types.h
sys/uio.h sys/un.h sys/utsname.h sys/wait.h sys/xattr.h boost/any.hpp openssl/md5.h""".split()
# (first: C11's <threads.h> and C++'s <mutex> both declare once_flag, so no `using namespace std` before them)
INCLUDE_EVERY_HEADER = "".join(f"#include <{header}>\n" for header in EVERY_HEADER) + "using namespace std;\n"
REACHED = "seidr-test: the program's function ran"


def names_the_headers_declare(compiler: str) -> set[str]:
    """Every identifier in the preprocessed text of all the headers (a superset of the names
    they declare)."""
    preprocessed = subprocess.run([compiler, "-std=c++17", "-E", "-P", "-x", "c++", "-"], input=INCLUDE_EVERY_HEADER,
                                  capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"\b[A-Za-z_]\w*\b", preprocessed))


# The 164 problems in parts of this size, a test each (each part takes minutes: every program
# includes every header, and its server too)
PART = 41


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("part", range(4))
def test_no_header_the_program_includes_takes_the_tests_calls_of_any_problem(dataset, executor, part):
    """All 164 problems, each with a wrong function that includes every header and says when it
    runs: every test's calls reach it (it speaks in every test's output) and the program is not
    solved. Where a header declares the entry point's name (strlen, exchange, unique, search...),
    the canonical solution with every header passes too."""
    clashing = names_the_headers_declare(executor.compiler)
    assert "strlen" in clashing and "unique" in clashing  # the scan sees the headers

    async def check(name: str, slots: asyncio.Semaphore) -> list[str]:
        problem = dataset.load(name, seed=0)
        record = dataset.records()[name]
        judged = {"entry_point": problem.entry_point, "signature": problem.signature, "preamble": problem.preamble}
        wrong_body = f'    printf("{REACHED}\\n");\n    return {{}};\n}}\n'
        errors = []
        async with slots:
            wrong = await executor.run(INCLUDE_EVERY_HEADER + problem.preamble + record["prompt"] + wrong_body,
                                       problem.valid, "function", **judged)
            if problem.entry_point in clashing:
                right = await executor.run(INCLUDE_EVERY_HEADER + problem.preamble + canonical(dataset, name),
                                           problem.valid, "function", **judged)
                if not all(o.passed for o in right):
                    errors.append(f"{name}: the canonical solution fails: {next(o for o in right if not o.passed)}")
        if all(o.passed for o in wrong):
            errors.append(f"{name}: a wrong function passes every test")
        errors += [f"{name}: test {k} did not reach the program's function: {o}" for k, o in enumerate(wrong)
                   if REACHED not in o.actual]
        return errors

    async def check_all(names: list[str]) -> list[str]:
        slots = asyncio.Semaphore(2)
        found = await asyncio.gather(*(check(name, slots) for name in names))
        return [error for errors in found for error in errors]

    names = dataset.problem_names()
    assert len(names) == 164 and PART * 4 >= len(names)
    assert asyncio.run(check_all(names[part * PART:(part + 1) * PART])) == []


# ---- a search ----

def test_a_scripted_model_solves_cpp_0_through_the_app(compose_cfg, dataset, tmp_path):
    right = canonical(dataset, "CPP/0")
    wrong = right.replace("<threshold", "<=threshold-1")

    def reply(step: str, messages, index: int) -> str:
        if step == "explain":
            return "It subtracts one from the threshold."
        return f"Here it is:\n```cpp\n{wrong if step == 'draft' else right}```\n"

    backend = ScriptedBackend(reply)
    cfg = compose_cfg("dataset=humaneval", "language=cpp", "problem=CPP/0", "search.max_programs=6",
                      "search.branching_factor=1", "tracking=none", "model.cache=false")
    outcome = asyncio.run(run_problem(cfg, load_problem(cfg), tmp_path / "run", backend=backend))
    result = outcome.result
    assert result["solved"] and result["test_pass_rate"] == 1.0 and result["language"] == "cpp"
    assert [p.kind for p in outcome.programs] == ["draft", "repair"]
    assert "wrong" in {o.status for o in outcome.programs[0].outcomes}
    explain = next(messages for step, messages, *_ in backend.requests if step == "explain")[-1].content
    assert "```cpp" in explain and "has_close_elements" in explain and "assert" in explain


def test_prompts_speak_cpp_and_show_the_failing_assert(dataset):
    from seidr.prompts import cpp as cpp_prompts
    from seidr.prompts.common import template_instruction

    problem = dataset.load("CPP/0", seed=0)
    draft = cpp_prompts.draft(problem)[-1].content
    assert "Complete the C++ function" in draft and "headers" in draft and "Python" not in draft
    test = problem.valid[0]
    outcome = TestOutcome("wrong", 0.0, error="test assertion failed")
    explain = cpp_prompts.explain(problem, "bool has_close_elements(){}", test, outcome)[-1].content
    shown = explain.split("Test:\n```cpp\n", 1)[1].split("```", 1)[0]
    # the assert and its setup, without the test file's scaffolding
    assert "assert (has_close_elements" in shown and "int main" not in shown and "#include" not in shown
    assert "assert (has_close_elements" in template_instruction(0, problem, test, outcome)
