"""Running C++ programs: compiled once (g++, in the sandbox, with limits), the binary kept for
the rest of the run by the hash of its source, then run once per test from that one compile."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Sequence

from seidr.execution.base import TestOutcome
from seidr.execution.sandbox import Sandbox
from seidr.execution.scoring import judge
from seidr.problem import Example, TestMode

# -static: a static binary starts in about half the time of a dynamic one, and the per-test
# start is most of the cost of running 2,000 tests
DEFAULT_FLAGS = ("-std=c++17", "-O2", "-pipe", "-static")


class CppExecutor:
    language = "cpp"

    def __init__(self, sandbox: Sandbox, compiler: str = "g++", flags: Sequence[str] = DEFAULT_FLAGS,
                 float_tolerance: float | None = None) -> None:
        self.sandbox = sandbox
        self.compiler = shutil.which(compiler) or compiler
        self.flags = list(flags)
        self.float_tolerance = float_tolerance
        self._binaries = Path(tempfile.mkdtemp(prefix="seidr-binaries-"))
        weakref.finalize(self, shutil.rmtree, self._binaries, True)  # binaries live as long as the run
        self._compiling: dict[str, asyncio.Lock] = {}

    async def run(self, code: str, tests: Sequence[Example], mode: TestMode) -> list[TestOutcome]:
        """One outcome per test, in order; a compile error is the verdict of every test."""
        if mode != "stdio":
            raise ValueError("C++ programs are judged on stdin/stdout tests")
        if not tests:
            return []
        digest = hashlib.sha256(" ".join([self.compiler, *self.flags, code]).encode()).hexdigest()
        cached = self._binaries / digest
        # one compile per source, even when identical programs are scored at the same time
        async with self._compiling.setdefault(digest, asyncio.Lock()):
            inputs = [t.input for t in tests]
            if cached.is_file():
                raw, _ = await self.sandbox.run({"mode": "binary", "binary": "program", "tests": inputs},
                                                files={"program": cached})
            else:
                job = {"mode": "binary", "binary": "program", "tests": inputs,
                       "compile": [self.compiler, *self.flags, "-o", "program", "program.cpp"]}
                source = self._binaries / f"{digest}.cpp"
                source.write_text(code, encoding="utf-8")
                raw, binary = await self.sandbox.run(job, files={"program.cpp": source}, keep="program")
                if binary is not None:
                    shutil.move(binary, cached)
        return [judge("stdio", test, raw.get(index), self.float_tolerance) for index, test in enumerate(tests)]
