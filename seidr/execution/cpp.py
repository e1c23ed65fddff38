"""Running C++ programs: compiled once (g++, in the sandbox, with limits), the binary kept for
the rest of the run by the hash of its source, then run once per test from that one compile.

Function-mode tests (HumanEval-X) follow the protocol of cpp_protocol.py: seidr's checker (the
tests' code and expected values, no code of the program) calls the program's functions in the
program's own process (the server), and a test passes only on the checker's report.

Compiling and running are separate sandbox runs: a binary is taken out of a sandbox in which only
the compiler ran, never out of one in which the program ran (it could have replaced its binary with
a link to any file, a FIFO or /proc/kmsg, and killed the harness so that nothing could undo it; the
sandbox's copy follows links). seidr takes that copy into its cache only through `_keep_binary`
(no links, plain files, bounded size, off the event loop). The checker and the server's object are
compiled once for every program whose declarations they fit."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any, Sequence

from seidr.errors import SeidrError
from seidr.execution.base import TestOutcome
from seidr.execution.cpp_protocol import (CHECKER_RUNTIME, SERVER_RUNTIME, Task, checker_source, program_source,
                                          runtime_sources, server_source, task)
from seidr.execution.cpp_scan import split_test
from seidr.execution.harness import NOT_RUN
from seidr.execution.sandbox import Sandbox, copy_out
from seidr.execution.scoring import judge
from seidr.problem import Example, TestMode

# -static: a static binary starts in about half the time of a dynamic one, and the per-test
# start is most of the cost of running 2,000 tests
DEFAULT_FLAGS = ("-std=c++17", "-O2", "-pipe", "-static")
# Headers whose library must be named at link time (HumanEval-X's md5 task uses OpenSSL)
LINK_LIBRARIES = {"openssl/": "-lcrypto"}
# A compiled binary larger than this is not kept (a static C++ binary is 2-3 MB)
MAX_BINARY_BYTES = 256 * 1024 * 1024


class CppExecutor:
    language = "cpp"

    def __init__(self, sandbox: Sandbox, compiler: str = "g++", flags: Sequence[str] = DEFAULT_FLAGS,
                 float_tolerance: float | None = None) -> None:
        self.sandbox = sandbox
        self.compiler = shutil.which(compiler) or compiler
        if os.path.isabs(self.compiler):
            # a compiler installed outside the system folders (its bin/ and the rest of its prefix)
            sandbox.reveal(Path(self.compiler).resolve().parent.parent)
        self.flags = list(flags)
        self.float_tolerance = float_tolerance
        self._binaries = Path(tempfile.mkdtemp(prefix="seidr-binaries-"))
        weakref.finalize(self, shutil.rmtree, self._binaries, True)  # binaries live as long as the run
        self._compiling: dict[str, asyncio.Lock] = {}

    async def run(self, code: str, tests: Sequence[Example], mode: TestMode, *, entry_point: str | None = None,
                  preamble: str = "", signature: str | None = None) -> list[TestOutcome]:
        """One outcome per test, in order; a compile error is the verdict of every test. A function
        task's `signature` (the prompt, ending in the entry point's opening line) gives the checker
        the dataset's entry point signature and helpers (cpp_protocol.Task), and the `preamble`
        (the dataset's code every program starts with) the headers the checker includes besides the
        prompt's; without it, the checker calls every function of the program the tests call, as the
        program declares it, with the program's library headers."""
        if not tests:
            return []
        if mode == "function":
            known = task(signature, entry_point, preamble) if signature and entry_point else None
            if signature and entry_point and known is None:
                raise SeidrError(f"the task's prompt declares no function {entry_point!r} seidr can call")
            return await self._run_functions(code, tests, known)
        if mode != "stdio":
            raise ValueError(f"C++ programs are judged on stdin/stdout or function tests, not {mode!r}")
        inputs = [t.input for t in tests]
        binary, raw = await self._compile({"program.cpp": code}, ["-o", "program", "program.cpp"], "program", inputs)
        if binary is not None:
            raw = await self._run(binary, inputs)
        return [judge("stdio", test, raw.get(index), self.float_tolerance) for index, test in enumerate(tests)]

    async def _run_functions(self, code: str, tests: Sequence[Example], known: Task | None) -> list[TestOutcome]:
        """Each test is a C++ file with a `main()`; tests sharing their code before `main` (helpers
        such as `issame`) go into one binary with the program. After a timeout, the tests not yet
        run fail as timeouts without running (one time budget per program)."""
        outcomes: list[TestOutcome | None] = [None] * len(tests)
        groups: dict[str, list[tuple[int, str, int]]] = {}
        for index, test in enumerate(tests):
            try:
                header, body, line = split_test(test.input)
            except ValueError as error:
                outcomes[index] = TestOutcome("error", 0.0, error=f"bad test: {error}")
                continue
            groups.setdefault(header, []).append((index, body, line))
        timed_out = False
        for header, members in groups.items():
            if timed_out:  # one time budget per program, across its binaries too (see harness.NOT_RUN)
                for index, _, _ in members:
                    outcomes[index] = TestOutcome("timeout", 0.0, error=NOT_RUN)
                continue
            cases = [(body, line) for _, body, line in members]
            inputs = [f"{k}\n" for k in range(len(members))]
            raw = await self._build_and_check(code, header, cases, inputs, known)
            for k, (index, _, _) in enumerate(members):
                outcomes[index] = judge("function", tests[index], raw.get(k))
                timed_out = timed_out or outcomes[index].status == "timeout"
        return [outcome for outcome in outcomes if outcome is not None]

    async def _compile(self, sources: dict[str, str | Path], arguments: list[str], output: str,
                       inputs: list[str]) -> tuple[Path | None, dict[int, dict[str, Any]]]:
        """(the compiler's `output` from `sources` (file name: text, or a file compiled before),
        None) compiling at most once per source, or (None, the compiler's verdict for each input).

        The output comes out of a sandbox in which only the compiler ran (see the module's
        docstring), into the cache through `_keep_binary`."""
        texts = "".join(value for value in sources.values() if isinstance(value, str))
        libraries = [flag for header, flag in LINK_LIBRARIES.items()
                     if f"<{header}" in texts.replace(" ", "") and "-c" not in arguments]
        argv = [self.compiler, *self.flags, *arguments, *libraries]
        named = sorted((name, value if isinstance(value, str) else f"file {value.name}")
                       for name, value in sources.items())
        digest = hashlib.sha256("\0".join([*argv, *(f"{name}\0{value}" for name, value in named)]).encode()).hexdigest()
        cached = self._binaries / digest
        # one compile per source, even when identical programs are scored at the same time
        async with self._compiling.setdefault(digest, asyncio.Lock()):
            if cached.is_file():
                return cached, {}
            folder = self._binaries / f"{digest}.src"
            folder.mkdir(exist_ok=True)
            files = {}
            for name, value in sources.items():
                if isinstance(value, Path):
                    files[name] = value
                else:
                    (folder / name).write_text(value, encoding="utf-8")
                    files[name] = folder / name
            job = {"mode": "binary", "binary": output, "tests": inputs, "run": False, "compile": argv}
            raw, kept = await self.sandbox.run(job, files=files, keep=output)
            if kept is not None and raw:  # a failed compile may leave a partial output: never cached
                await asyncio.to_thread(kept.unlink, True)
            elif kept is not None and await asyncio.to_thread(_keep_binary, kept, cached):
                return cached, {}
            return None, raw or {index: {"status": "compile", "error": "the compiler made no program"}
                                 for index in range(len(inputs))}

    async def _build_and_check(self, code: str, header: str, cases: list[tuple[str, int]], inputs: list[str],
                               known: Task | None) -> dict[int, dict[str, Any]]:
        """The harness's result per test of one group: the checker and the server's object (each
        compiled once for every program they fit, at the same time), the program linked with the
        server, then the checker run on each test with the server beside it."""
        (checker, raw), (server, server_raw) = await asyncio.gather(
            self._compile({"checker.cpp": checker_source(code, header, cases, known),
                           **runtime_sources(CHECKER_RUNTIME)},
                          ["-o", "checker", "checker.cpp", "seidr_checker.cpp"], "checker", inputs),
            self._compile({"server.cpp": server_source(code, header, cases, known), **runtime_sources(SERVER_RUNTIME)},
                          ["-c", "-o", "server.o", "server.cpp"], "server.o", inputs))
        if checker is None:
            return raw
        if server is None:
            return server_raw
        binary, raw = await self._compile({"program.cpp": program_source(code, header, cases), "server.o": server},
                                          ["-o", "program", "server.o", "program.cpp"], "program", inputs)
        if binary is None:
            return raw
        # the checker is sealed: execute-only and not the run user's, so the program cannot read
        # the expected values out of it (see cpp_protocol.py)
        raw, _ = await self.sandbox.run({"mode": "binary", "binary": "checker", "server": "program", "tests": inputs,
                                         "report": True}, files={"checker": checker, "program": binary},
                                        sealed=("checker",))
        return raw

    async def _run(self, binary: Path, inputs: list[str]) -> dict[int, dict[str, Any]]:
        """The harness's result per input of a compiled stdin/stdout program."""
        raw, _ = await self.sandbox.run({"mode": "binary", "binary": "program", "tests": inputs}, files={"program": binary})
        return raw


def _keep_binary(kept: Path, cached: Path) -> bool:
    """Move the sandbox's copy of a compiled binary into the cache, if it is a plain file of
    sensible size (sandbox.copy_out: never through a link, never from a device or FIFO, never more
    than MAX_BINARY_BYTES). Blocking file work: called off the event loop."""
    try:
        return copy_out(kept, cached, MAX_BINARY_BYTES, mode=0o700)
    finally:
        try:
            os.unlink(kept)
        except OSError:
            pass
