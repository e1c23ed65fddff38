"""Runs one program over many tests inside the sandbox. Standalone: standard library only.

Started as `python -I harness.py '<limits json>'` with the job (code, mode, test inputs) on
stdin; writes one JSON line per test to stdout. The expected outputs never enter the sandbox:
seidr compares outputs outside, so a program cannot read the answers out of memory.

Shape: this process (the supervisor) applies the limits, drops privileges, compiles the program
once, then forks a worker that runs the tests one after another in-process (a fork instead of a
new interpreter per test: the original SEIDR's per-test process start was 96% of its run time).
The supervisor holds the clock: a test that overruns gets its worker's whole process group
killed and a fresh worker continues with the next test, so one bad test costs one test."""

import builtins
import ctypes
import io
import json
import linecache
import os
import resource
import select
import signal
import sys
import time
import traceback

PROGRAM = "<program>"
TEST = "<test>"


class OutputLimit(BaseException):
    """Raised into the program when it prints more than allowed. A BaseException, so that
    `except Exception` in the program does not swallow it."""


class LimitedBytes(io.RawIOBase):
    def __init__(self, limit):
        self.limit = limit
        self.data = bytearray()

    def writable(self):
        return True

    def write(self, chunk):
        if len(self.data) + len(chunk) > self.limit:
            self.data += bytes(chunk[: max(0, self.limit - len(self.data))])
            raise OutputLimit()
        self.data += bytes(chunk)
        return len(chunk)


def apply_limits(limits):
    """Resource limits and the privilege drop, before any untrusted code exists in this process."""
    mb = 1024 * 1024
    caps = {
        resource.RLIMIT_AS: limits["memory_mb"] * mb,
        resource.RLIMIT_FSIZE: limits["max_file_bytes"],
        resource.RLIMIT_NPROC: limits["max_processes"],
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_CPU: int(limits["total_cpu_s"]),
    }
    for which, value in caps.items():
        resource.setrlimit(which, (value, value))
    uid = limits.get("uid")
    if uid is not None and os.geteuid() == 0:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    # Not dumpable: processes of the same user (the program's own workers) cannot open
    # /proc/<this pid>/fd/1 to write forged results into seidr's pipe.
    try:
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):
        pass


def program_traceback(exc):
    """The exception as the program's author would want it: only frames of the program."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename in (PROGRAM, TEST)]
    lines = traceback.format_list(frames) + traceback.format_exception_only(type(exc), exc)
    text = "".join(lines)
    if frames:
        text = "Traceback (most recent call last):\n" + text
    return "\n".join(text.rstrip("\n").split("\n")[-12:])


def run_one(code, mode, test, limits):
    """Run the compiled program on one test, in this (worker) process."""
    out = LimitedBytes(limits["max_output_bytes"])
    err = LimitedBytes(8192)
    stdin_text = test if mode == "stdio" else ""
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin_text.encode("utf-8")), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(out, encoding="utf-8", errors="replace", write_through=True)
    sys.stderr = io.TextIOWrapper(err, encoding="utf-8", errors="replace", write_through=True)
    # stdio programs run as a script; function programs as a module, so a `__main__` block of
    # example calls (often reading input()) does not run during the tests
    namespace = {"__name__": "__main__" if mode == "stdio" else "solution", "__builtins__": builtins}
    result = {"status": "ok", "error": ""}
    try:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        spent = int(usage.ru_utime + usage.ru_stime)
        # per-test CPU: the kernel stops this worker with SIGXCPU past its share
        resource.setrlimit(resource.RLIMIT_CPU, (min(spent + limits["test_cpu_s"], limits["total_cpu_s"]),
                                                 limits["total_cpu_s"]))
        exec(code, namespace)
        if mode == "function":
            exec(compile(test, TEST, "exec"), namespace)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            result = {"status": "exception", "exc_type": "SystemExit", "error": f"exited with status {exc.code}"}
    except OutputLimit:
        result = {"status": "output_limit", "error": "printed more than the output limit"}
    except MemoryError:
        result = {"status": "memory", "error": "MemoryError: ran out of memory"}
    except BaseException as exc:  # the program's own errors, whatever they are
        result = {"status": "exception", "exc_type": type(exc).__name__, "error": program_traceback(exc)}
    finally:
        try:
            sys.stdout.flush()
        except BaseException:
            pass
        sys.stdin, sys.stdout, sys.stderr = saved
    result["stdout"] = bytes(out.data).decode("utf-8", errors="replace")
    if result["status"] == "ok" and err.data and mode == "stdio":
        result["stderr"] = bytes(err.data[-2000:]).decode("utf-8", errors="replace")
    return result


def worker(code, mode, tests, start, limits, report_fd):
    """Run tests[start:] in order, reporting each result on report_fd. Never returns."""
    try:
        os.setpgid(0, 0)  # its own group: on timeout the supervisor kills it with its children
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # raw writes to the real stdout/stderr go nowhere
            os.dup2(devnull, fd)
        report = os.fdopen(report_fd, "w", encoding="utf-8")
        for index in range(start, len(tests)):
            result = run_one(code, mode, tests[index], limits)
            result["i"] = index
            report.write(json.dumps(result) + "\n")
            report.flush()
    finally:
        os._exit(0)


def supervise(code, mode, tests, limits, emit):
    """Fork workers and enforce the per-test wall clock until every test has a result."""
    index = 0
    while index < len(tests):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            worker(code, mode, tests, index, limits, write_end)
        os.close(write_end)
        index = watch_worker(pid, read_end, index, len(tests), limits, emit)
        os.close(read_end)


def watch_worker(pid, read_end, index, total, limits, emit):
    """Collect a worker's results; returns the index of the first test it did not finish."""
    buffer = b""
    deadline = time.monotonic() + limits["test_timeout_s"]
    while index < total:
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([read_end], [], [], max(0.0, remaining))
        if not ready:  # the current test overran its wall clock
            kill_group(pid)
            emit({"i": index, "status": "timeout", "error": f"took longer than {limits['test_timeout_s']} s"})
            return index + 1
        chunk = os.read(read_end, 65536)
        if not chunk:  # the worker died mid-test (a signal, a limit, or the program killed it)
            status = kill_group(pid)
            emit(death_result(index, status))
            return index + 1
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            result = json.loads(line)
            if result.get("i") != index:
                continue  # not a line the worker wrote for this test
            emit(result)
            index += 1
            deadline = time.monotonic() + limits["test_timeout_s"]
    kill_group(pid)
    return index


def kill_group(pid):
    """Kill a worker with everything it started; returns its wait status."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return 0


def death_result(index, status):
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        if number == signal.SIGXCPU:
            return {"i": index, "status": "timeout", "error": "used up its CPU time"}
        if number == signal.SIGXFSZ:
            return {"i": index, "status": "output_limit", "error": "wrote a file larger than allowed"}
        name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else str(number)
        return {"i": index, "status": "crash", "error": f"killed by signal {name}"}
    return {"i": index, "status": "crash", "error": "the program ended the test process"}


def main():
    limits = json.loads(sys.argv[1])
    apply_limits(limits)
    job = json.loads(sys.stdin.read())
    tests = job["tests"]
    out = sys.stdout

    def emit(result):
        out.write(json.dumps(result) + "\n")
        out.flush()

    source = job["code"]
    try:
        code = compile(source, PROGRAM, "exec")
    except (SyntaxError, ValueError) as exc:
        message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        for index in range(len(tests)):
            emit({"i": index, "status": "syntax", "error": message})
        return
    # so tracebacks of the program show its source lines
    linecache.cache[PROGRAM] = (len(source), None, source.splitlines(True), PROGRAM)
    supervise(code, job["mode"], tests, limits, emit)


if __name__ == "__main__":
    main()
