"""Verdicts of running a program on tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["pass", "wrong", "error", "timeout", "output_limit", "memory", "syntax", "compile"]


@dataclass(frozen=True)
class TestOutcome:
    """The result of one test: status, partial-credit score in [0, 1], what the program printed
    (truncated) and the tail of its error output or traceback."""

    __test__ = False  # not a pytest test class, despite the name

    status: Status
    score: float
    actual: str = ""
    error: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "pass"


@dataclass(frozen=True)
class ExecutionLimits:
    """Resource limits for one program run. Defaults are safe for PSB2 and HumanEval."""

    test_timeout_s: float = 2.0  # wall clock per test
    test_cpu_s: int = 2  # CPU seconds per test (RLIMIT_CPU)
    total_timeout_s: float = 120.0  # wall clock for the whole program over all its tests
    memory_mb: int = 1024  # address space per process (RLIMIT_AS); with a cgroup, also the program's total
    max_processes: int = 256  # RLIMIT_NPROC (per user; a fork bomb stops here); with a cgroup, pids.max
    max_file_bytes: int = 16 * 1024 * 1024  # RLIMIT_FSIZE
    max_output_bytes: int = 64 * 1024  # stdout kept per test; more stops the test
    compile_timeout_s: float = 30.0  # C++: wall clock for one compile
    compile_memory_mb: int = 2048  # C++: address space of the compiler
    open_files: int = 128  # RLIMIT_NOFILE per process: at most max_processes × open_files per program
    disk_mb: int = 256  # namespace level: size of the working directory (a tmpfs)
