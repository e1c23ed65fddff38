"""Runs one program over many tests inside the sandbox. Standalone: standard library only.

Started as `python -I -c <this file> '<limits json>'` with the job on stdin; writes one JSON
line per test to stdout. Jobs: Python source run in-process ("stdio", "function"), or a
compiled program ("binary", after an optional compile step) run once per test. The expected outputs never enter the sandbox:
seidr compares outputs outside, so a program cannot read the answers out of memory.

Shape: this process (the supervisor) applies the limits, drops privileges, compiles the program
once, then forks a worker that runs the tests one after another in-process (a fork instead of a
new interpreter per test: the original SEIDR's per-test process start was 96% of its run time).
The supervisor holds the clock: a test that overruns gets its worker's whole process group
killed and a fresh worker continues with the next test, so one bad test costs one test.
A function task (Python or compiled) is one program with one time budget instead: once a test
times out, the tests after it fail as timeouts without running, so an endless loop in a
HumanEval program costs one test's limit, not one per assert.

Function tasks are judged where the program is not: the program runs in a fresh interpreter of
its own (the callee, started from this same source with `--callee`) that receives only its
source and, per call, the arguments, and answers with the returned value as plain data. The
test code, with its expected values, runs here in the supervisor, its entry point replaced by
a proxy that asks the callee. Whatever the program does (exit early, patch builtins, write to
its pipes, read frames, return an object equal to everything), it can only choose what value it
returns or which built-in exception it raises: the assert that says "pass" is seidr's.

Map (one section per protocol, each behind a banner line `# ==== ... ====`):
- shared: error text cut to size (clip), limits and their privilege drop, the program's
  traceback, ending a process group and naming how a process died (kill_group, death_result);
- "stdio" protocol: run_one, worker, supervise, watch_worker;
- "binary" protocol: run_process and its file helpers, run_reported, run_binary_tests,
  trim_compiler, tail;
- "function" protocol: the plain-data codec (to_plain, from_plain), the callee's side
  (callee_main, crossing), the supervisor's side (Callee, rebuilt_exception, run_function_tests);
- the handshake (announce), last before the entry: main, which picks the protocol by the job's
  mode."""

import builtins
import ctypes
import errno
import fcntl
import io
import json
import linecache
import math
import os
import resource
import select
import signal
import stat
import sys
import time
import traceback

# ==== shared by the three protocols ====

PROGRAM = "<program>"
TEST = "<test>"
# The verdict of a function task's tests after one timed out: they are not run (see run_function_tests)
NOT_RUN = "not run: an earlier test of this program timed out (one time budget per program)"
# Text a program decides (error messages, tracebacks, exception names, compiler output) is cut to
# this many characters before it leaves the sandbox, so what seidr holds does not grow with it
MAX_ERROR_CHARS = 4000
MAX_NAME_CHARS = 100
# The built-in exception classes by name, taken before any program code runs (a program may
# rebind names in builtins): a program's exception crosses to the tests as one of these
BUILTIN_EXCEPTIONS = {name: value for name, value in vars(builtins).items()
                      if isinstance(value, type) and issubclass(value, Exception)}


def clip(text, limit=MAX_ERROR_CHARS):
    """`text` cut to about `limit` characters, keeping its start and end (a traceback's last line
    names the error) and saying how much was cut."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters cut ...]\n{text[-half:]}"


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


# seccomp: the filter below, in classic BPF (instruction code, jump if true, jump if false, value)
BPF_LD_W_ABS, BPF_JEQ, BPF_JGE, BPF_JSET, BPF_RET = 0x20, 0x15, 0x35, 0x45, 0x06
SECCOMP_ALLOW, SECCOMP_ERRNO = 0x7FFF0000, 0x00050000
CLONE_NEWUSER, CLONE_NEWIPC = 0x10000000, 0x08000000
PRIO_PROCESS, IOPRIO_WHO_PROCESS = 0, 1
# per machine: the kernel's name for its native system call ABI, and the numbers of the calls the
# filter looks at
SYSCALLS = {
    "x86_64": {"arch": 0xC000003E, "clone": 56, "unshare": 272, "clone3": 435, "add_key": 248, "request_key": 249,
               "keyctl": 250, "prlimit64": 302, "setpriority": 141, "ioprio_set": 251, "sched_setparam": 142,
               "sched_setscheduler": 144, "sched_setaffinity": 203, "sched_setattr": 314, "migrate_pages": 256,
               "move_pages": 279},
    "aarch64": {"arch": 0xC00000B7, "clone": 220, "unshare": 97, "clone3": 435, "add_key": 217, "request_key": 218,
                "keyctl": 219, "prlimit64": 261, "setpriority": 140, "ioprio_set": 30, "sched_setparam": 118,
                "sched_setscheduler": 119, "sched_setaffinity": 122, "sched_setattr": 274, "migrate_pages": 238,
                "move_pages": 239},
}
# Calls whose first argument names the process they change (0: the caller): the scheduling and
# memory placement of another process of the run user is refused
OWN_PROCESS_ONLY = ("sched_setparam", "sched_setscheduler", "sched_setaffinity", "sched_setattr", "migrate_pages",
                    "move_pages")
# seccomp_data: nr at 0, arch at 4, args[i] at 16 + 8 i (the low half first on these machines)
NR, ARCH = 0, 4


def arg(index, high=False):
    return 16 + 8 * index + (4 if high else 0)


def assembled(steps):
    """A BPF program from `steps`: (code, jump if true, jump if false, value) where a jump is a
    label (a string) or 0 (the next step), and a string alone marks where a label is. Jumps only go
    forward: a label behind its jump is an error."""
    places, program = {}, []
    for step in steps:
        if isinstance(step, str):
            places[step] = len(program)
        else:
            program.append(step)
    resolved, index = [], 0
    for code, true, false, value in program:
        offsets = []
        for target in (true, false):
            offset = 0 if target == 0 else places[target] - index - 1
            if not 0 <= offset <= 255:
                raise ValueError(f"jump to {target!r} out of reach from step {index}")
            offsets.append(offset)
        resolved.append((code, *offsets, value))
        index += 1
    return resolved


def seccomp_filter(machine):
    """A seccomp program for the run's processes, allowing everything but:
    - new user namespaces (unshare or clone with CLONE_NEWUSER: EPERM; clone3, whose flags a
      filter cannot read: ENOSYS, so that libc falls back to clone): in one of its own a program
      could mount file systems (a tmpfs far past its disk quota);
    - the kernel's keyrings (EPERM: a run user's keyring outlives its processes, so a program
      could leave data there for a later run of the same uid);
    - changing another process: its limits (prlimit64 with a pid and new limits), its priority
      (setpriority other than of the caller, ioprio_set likewise), its scheduling or its CPUs
      (sched_setaffinity, sched_setscheduler, sched_setparam, sched_setattr with a pid), where its
      memory lies (migrate_pages, move_pages with a pid): EPERM. The processes that judge a program
      run as its user, and the kernel lets a process of the same uid lower another's limits,
      priority and CPUs, dumpable or not: a program could starve its own judge;
    - system calls of any other ABI (i386, x32).
    None on a machine it does not know."""
    if machine not in SYSCALLS:
        return None
    nr = SYSCALLS[machine]
    eperm, enosys = SECCOMP_ERRNO | errno.EPERM, SECCOMP_ERRNO | errno.ENOSYS
    return assembled([
        (BPF_LD_W_ABS, 0, 0, ARCH),
        (BPF_JEQ, 0, "eperm", nr["arch"]),
        (BPF_LD_W_ABS, 0, 0, NR),
        (BPF_JGE, "eperm", 0, 0x40000000),  # x32's numbers
        (BPF_JEQ, "enosys", 0, nr["clone3"]),
        *((BPF_JEQ, "eperm", 0, nr[name]) for name in ("add_key", "request_key", "keyctl")),
        (BPF_JEQ, "prlimit64", 0, nr["prlimit64"]),
        (BPF_JEQ, "setpriority", 0, nr["setpriority"]),
        (BPF_JEQ, "ioprio_set", 0, nr["ioprio_set"]),
        *((BPF_JEQ, "own_process", 0, nr[name]) for name in OWN_PROCESS_ONLY),
        (BPF_JEQ, "clone_flags", 0, nr["unshare"]),
        (BPF_JEQ, "clone_flags", "allow", nr["clone"]),
        "clone_flags",
        (BPF_LD_W_ABS, 0, 0, arg(0)),
        (BPF_JSET, "eperm", "allow", CLONE_NEWUSER),
        "prlimit64",
        (BPF_LD_W_ABS, 0, 0, arg(0)),  # its pid: 0 is the caller
        (BPF_JEQ, "allow", 0, 0),
        (BPF_LD_W_ABS, 0, 0, arg(2)),  # its new limits' address: none is only reading
        (BPF_JEQ, 0, "eperm", 0),
        (BPF_LD_W_ABS, 0, 0, arg(2, high=True)),
        (BPF_JEQ, "allow", "eperm", 0),
        "setpriority",  # (which, who): the caller alone is PRIO_PROCESS, 0
        (BPF_LD_W_ABS, 0, 0, arg(0)),
        (BPF_JEQ, "who", "eperm", PRIO_PROCESS),
        "ioprio_set",
        (BPF_LD_W_ABS, 0, 0, arg(0)),
        (BPF_JEQ, "who", "eperm", IOPRIO_WHO_PROCESS),
        "who",
        (BPF_LD_W_ABS, 0, 0, arg(1)),
        (BPF_JEQ, "allow", "eperm", 0),
        "own_process",
        (BPF_LD_W_ABS, 0, 0, arg(0)),
        (BPF_JEQ, "allow", "eperm", 0),
        "allow",
        (BPF_RET, 0, 0, SECCOMP_ALLOW),
        "eperm",
        (BPF_RET, 0, 0, eperm),
        "enosys",
        (BPF_RET, 0, 0, enosys),
    ])


def install_seccomp_filter():
    """Install seccomp_filter for this process and all it starts. None when done, else why not."""
    program = seccomp_filter(os.uname().machine)
    if program is None:
        return f"no seccomp filter for this machine ({os.uname().machine})"

    class Instruction(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Instruction))]

    instructions = (Instruction * len(program))(*(Instruction(*step) for step in program))
    fprog = Program(len(program), instructions)
    libc = ctypes.CDLL(None, use_errno=True)
    # PR_SET_NO_NEW_PRIVS (38), then PR_SET_SECCOMP (22) with SECCOMP_MODE_FILTER (2)
    if libc.prctl(38, ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0 or \
            libc.prctl(22, ctypes.c_ulong(2), ctypes.byref(fprog), ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
        return f"the seccomp filter was refused: {os.strerror(ctypes.get_errno())}"
    return None


CLONE_NEWNS, CLONE_NEWPID = 0x00020000, 0x20000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x8, 0x4000, 0x40000


def private_namespaces():
    """At the process level, as root before the privilege drop: the rest of the run in IPC, mount
    and PID namespaces of its own, with this process as the PID namespace's init.
    - IPC: System V objects and POSIX message queues the program makes vanish with the run
      instead of waiting for a later program of the same run user.
    - PID, with a /proc of its own: the program sees no process but the run's (no command line
      of seidr's, with whatever secret it holds), can signal none outside it, and cannot stop or
      kill this supervisor: init ignores every signal from inside its namespace that it has no
      handler for, SIGSTOP and SIGKILL included.
    The process that called this stays outside, waits for the run's init and exits as it did.
    Returns (why the sandbox is broken, what it goes without): (None, None) in the run's init;
    (None, why) when the machine allows no namespaces (a container without CAP_SYS_ADMIN): the
    run goes on as before, and seidr's log says what does not hold."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
    if libc.unshare(ctypes.c_int(CLONE_NEWIPC | CLONE_NEWNS | CLONE_NEWPID)) != 0:
        return None, f"unshare: {os.strerror(ctypes.get_errno())}"
    # from here on the namespaces exist: whatever fails breaks the sandbox
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        return f"cannot make the mounts private: {os.strerror(ctypes.get_errno())}", None
    sys.stdout.flush()
    pid = os.fork()
    if pid:  # outside: nothing left to do but wait
        for fd in (0, 1):
            os.close(fd)
        status = os.waitpid(pid, 0)[1]
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    if libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None) != 0:
        return f"no /proc of its own: {os.strerror(ctypes.get_errno())}", None
    return None, None


def apply_limits(limits, memory_mb):
    """Resource limits and the privilege drop, before any untrusted code exists in this process.
    Returns (why the sandbox is broken: then no program may run, or None; what it goes without)."""
    caps = {
        resource.RLIMIT_AS: memory_mb * 1024 * 1024,
        resource.RLIMIT_FSIZE: limits["max_file_bytes"],
        resource.RLIMIT_NPROC: limits["max_processes"],
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_CPU: int(limits["total_cpu_s"]),
    }
    for which, value in caps.items():
        resource.setrlimit(which, (value, value))
    uid = limits.get("uid")
    problem, caveat = private_namespaces() if limits.get("namespaces") else (None, None)
    if problem is not None:
        return problem, None
    # this process is its PID namespace's init at both levels (see private_namespaces): the only
    # signal it has a handler for must go too, or a program could interrupt it with SIGINT
    signal.signal(signal.SIGINT, signal.SIG_IGN)
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
    return install_seccomp_filter(), caveat


def set_memory(memory_mb):
    value = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (value, value))


def program_traceback(exc):
    """The exception as the program's author would want it: only frames of the program."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename in (PROGRAM, TEST)]
    lines = traceback.format_list(frames) + traceback.format_exception_only(type(exc), exc)
    text = "".join(lines)
    if frames:
        text = "Traceback (most recent call last):\n" + text
    return clip("\n".join(text.rstrip("\n").split("\n")[-12:]))


def exception_name(exc):
    return clip(_type(exc).__name__, MAX_NAME_CHARS)


# ==== "stdio" protocol: Python source on stdin/stdout tests, in forked workers ====

def run_one(code, test, limits):
    """Run the compiled program on one test, in this (worker) process."""
    out = LimitedBytes(limits["max_output_bytes"])
    err = LimitedBytes(8192)
    stdin_text = test
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin_text.encode("utf-8")), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(out, encoding="utf-8", errors="replace", write_through=True)
    sys.stderr = io.TextIOWrapper(err, encoding="utf-8", errors="replace", write_through=True)
    namespace = {"__name__": "__main__", "__builtins__": builtins}  # run as a script
    result = {"status": "ok", "error": ""}
    try:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        spent = int(usage.ru_utime + usage.ru_stime)
        # per-test CPU: the kernel stops this worker with SIGXCPU past its share
        resource.setrlimit(resource.RLIMIT_CPU, (min(spent + limits["test_cpu_s"], limits["total_cpu_s"]),
                                                 limits["total_cpu_s"]))
        exec(code, namespace)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            result = {"status": "exception", "exc_type": "SystemExit", "error": clip(f"exited with status {exc.code}")}
    except OutputLimit:
        result = {"status": "output_limit", "error": "printed more than the output limit"}
    except MemoryError:
        result = {"status": "memory", "error": "MemoryError: ran out of memory"}
    except OSError as exc:
        if exc.errno == errno.EFBIG:  # CPython ignores SIGXFSZ: the file limit arrives as this error
            result = {"status": "output_limit", "error": "wrote a file larger than allowed"}
        else:
            result = {"status": "exception", "exc_type": exception_name(exc), "error": program_traceback(exc)}
    except BaseException as exc:  # the program's own errors, whatever they are
        result = {"status": "exception", "exc_type": exception_name(exc), "error": program_traceback(exc)}
    finally:
        try:
            sys.stdout.flush()
        except BaseException:
            pass
        sys.stdin, sys.stdout, sys.stderr = saved
    result["stdout"] = bytes(out.data).decode("utf-8", errors="replace")
    if result["status"] == "ok" and err.data:
        result["stderr"] = bytes(err.data[-2000:]).decode("utf-8", errors="replace")
    return result


def worker(code, tests, start, limits, report_fd):
    """Run tests[start:] in order, reporting each result on report_fd. Never returns."""
    try:
        # its own group (on timeout the supervisor kills it with its children) and session: a
        # session is the kernel's scheduling autogroup, whose priority a program of its own may lower
        os.setsid()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a script of its own
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # raw writes to the real stdout/stderr go nowhere
            os.dup2(devnull, fd)
        report = os.fdopen(report_fd, "w", encoding="utf-8")
        for index in range(start, len(tests)):
            result = run_one(code, tests[index], limits)
            result["i"] = index
            report.write(json.dumps(result) + "\n")
            report.flush()
    finally:
        os._exit(0)


def supervise(code, tests, limits, emit):
    """Fork workers and enforce the per-test wall clock until every test has a result."""
    index = 0
    while index < len(tests):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            worker(code, tests, index, limits, write_end)
        os.close(write_end)
        index = watch_worker(pid, read_end, index, len(tests), limits, emit)
        os.close(read_end)


def watch_worker(pid, read_end, index, total, limits, emit):
    """Collect a worker's results; returns the index of the first test it did not finish."""
    buffer = bytearray()
    # the worker's line holds at most the output limit, each byte at most six characters once
    # JSON-escaped, plus bounded error text (seidr reads lines up to the same size)
    longest = limits["max_output_bytes"] * 6 + 262144
    deadline = time.monotonic() + limits["test_timeout_s"]
    while index < total:
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([read_end], [], [], max(0.0, remaining))
        # past the deadline even while data keeps coming: a program that floods the report pipe
        # must not keep its test's clock from running out
        if not ready or remaining <= 0:  # the current test overran its wall clock
            kill_group(pid)
            emit({"i": index, "status": "timeout", "error": f"took longer than {limits['test_timeout_s']} s"})
            return index + 1
        chunk = os.read(read_end, 65536)
        if not chunk:  # the worker died mid-test (a signal, a limit, or the program killed it)
            status = kill_group(pid)
            emit(death_result(index, status))
            return index + 1
        buffer += chunk
        while (end := buffer.find(b"\n")) >= 0:
            line = bytes(buffer[:end])
            del buffer[:end + 1]
            try:
                result = json.loads(line)
            except ValueError:
                result = None
            if not isinstance(result, dict):
                return garbled(pid, index, emit)
            if result.get("i") != index:
                continue  # not a line the worker wrote for this test
            emit(result)
            index += 1
            deadline = time.monotonic() + limits["test_timeout_s"]
        if len(buffer) > longest:
            return garbled(pid, index, emit)
    kill_group(pid)
    return index


def garbled(pid, index, emit):
    """The program wrote over its worker's report pipe (text that is no result line, or a line
    longer than any result): its test fails, and a fresh worker goes on with the next."""
    kill_group(pid)
    emit({"i": index, "status": "exception", "exc_type": "ProtocolError",
          "error": "the program wrote over the harness's report channel"})
    return index + 1


# ==== shared: ending a process group, and what a process's death means ====

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


# ==== "binary" protocol: a compiled program (and its compile), one process per test ====

def run_process(argv, stdin_path, limits, cpu_s, wall_s, memory_mb, output_cap, extra_actions=(), spawned=None):
    """Run an executable once (a compiler, or a compiled program on one test) in its own session
    and process group (a session is the kernel's scheduling autogroup: a program that lowers its
    autogroup's priority lowers only its own) with its own limits. Returns (status, exit code or
    signal, stdout, stderr).
    `extra_actions`: more posix_spawn file actions; `spawned`: a list the child's pid is added to.

    posix_spawn (a vfork, no copy of this interpreter's page tables) is twice as fast as
    fork + exec here. It cannot set limits in the child, so this process lowers its own soft
    limits around the spawn and the child inherits them; the CPU limit is this process's usage
    plus the child's share, since a fresh child counts from zero."""
    out_path, err_path = "stdout.txt", "stderr.txt"
    # the child's files are opened here and handed over as descriptors: a path the program's
    # leftovers replaced with a FIFO would block the spawn (and this process) for good
    handles = []
    try:
        handles.append(high(os.open(stdin_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)))
        if not stat.S_ISREG(os.fstat(handles[0]).st_mode) and stdin_path != os.devnull:
            raise OSError(errno.EINVAL, "the test's input is not a plain file")
        for path in (out_path, err_path):  # whatever an earlier test left under these names goes
            handles.append(fresh_file(path))
    except OSError as error:
        for handle in handles:
            os.close(handle)
        return "exit", 1, "", f"the test's files could not be set up: {error.strerror or error}"
    usage = resource.getrusage(resource.RUSAGE_SELF)
    spent = int(usage.ru_utime + usage.ru_stime) + 1
    saved = {which: resource.getrlimit(which) for which in (resource.RLIMIT_CPU, resource.RLIMIT_FSIZE,
                                                            resource.RLIMIT_AS)}
    wanted = {resource.RLIMIT_CPU: spent + cpu_s, resource.RLIMIT_FSIZE: output_cap,
              resource.RLIMIT_AS: memory_mb * 1024 * 1024}
    try:
        for which, value in wanted.items():
            resource.setrlimit(which, (min(value, saved[which][1]), saved[which][1]))
        pid = os.posix_spawn(argv[0], argv, {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
                             file_actions=[*((os.POSIX_SPAWN_DUP2, handle, fd) for fd, handle in enumerate(handles)),
                                           *extra_actions],
                             setsid=True, setsigdef=(signal.SIGXFSZ, signal.SIGXCPU, signal.SIGPIPE, signal.SIGINT))
    except BaseException:
        for handle in handles:
            os.close(handle)
        raise
    finally:
        for which, (soft, hard) in saved.items():
            resource.setrlimit(which, (soft, hard))
    os.close(handles[0])
    if spawned is not None:
        spawned.append(pid)
    status = wait_with_timeout(pid, wall_s)
    stdout = read_back(handles[1], output_cap)
    stderr = read_back(handles[2], 16384)
    os.close(handles[1])
    os.close(handles[2])
    if status is None:
        return "timeout", None, stdout, stderr
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        verdict = {signal.SIGXCPU: "timeout", signal.SIGXFSZ: "output_limit"}.get(number, "crash")
        return verdict, number, stdout, stderr
    return ("ok" if os.WEXITSTATUS(status) == 0 else "exit"), os.WEXITSTATUS(status), stdout, stderr


def high(handle):
    """`handle` moved to 10 or above: a spawn's file actions set descriptors 0-4 one after another,
    and one that is already at such a number would be overwritten before it is handed over."""
    moved = fcntl.fcntl(handle, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(handle)
    return moved


def fresh_file(path):
    """A new, empty plain file at `path` (whatever was there removed), open for writing and for
    reading back by `read_back`: never by its path again, which the program may have replaced."""
    remove(path)
    return high(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))


def read_back(handle, cap):
    """At most `cap` bytes from the start of a file opened by fresh_file, as text."""
    data = b""
    try:
        while len(data) < cap and (chunk := os.pread(handle, cap - len(data), len(data))):
            data += chunk
    except OSError:
        pass
    return data.decode("utf-8", errors="replace")


def wait_with_timeout(pid, wall_s):
    """The child's wait status, or None after killing its group when it overran `wall_s`."""
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        finished = poller.poll(wall_s * 1000)
    finally:
        os.close(pidfd)
    if not finished:
        kill_group(pid)
        return None
    status = os.waitpid(pid, 0)[1]
    try:  # whatever it left running in its group goes too
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return status


def remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


REPORT_PATH = "report.txt"


def run_reported(argv, test, limits):
    """Run a function-mode test (see cpp_protocol.py): the checker `argv` with a fresh secret on
    a pipe at fd 3, a report file at fd 4, and "ok" only when the process this spawned wrote the
    one line the checker writes once the test's code has returned. Returns run_process's answer."""
    secret = os.urandom(16).hex()
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, (secret + "\n").encode())
        os.close(write_end)
        read_end = high(read_end)
        report = fresh_file(REPORT_PATH)
        actions = [(os.POSIX_SPAWN_DUP2, read_end, 3), (os.POSIX_SPAWN_DUP2, report, 4)]
        spawned = []
        try:
            answer = run_process(argv, "input.txt", limits, cpu_s=limits["test_cpu_s"],
                                 wall_s=limits["test_timeout_s"], memory_mb=limits["memory_mb"],
                                 output_cap=limits["max_output_bytes"], extra_actions=actions, spawned=spawned)
            reported = read_back(report, 4096)
        finally:
            os.close(report)
    finally:
        os.close(read_end)
    status, code, stdout, stderr = answer
    if status == "ok":
        expected = f"seidr-pass {int(test)} {spawned[0]} {secret}\n"
        if reported != expected:
            return ("exit", 0, stdout, stderr + "\nthe test process ended with status 0 before the test finished "
                                                "(it never reached the end of the test's code)")
    return answer


def run_binary_tests(job, limits, emit):
    """Compile once (when asked), then run the binary on every test. A function task's tests
    (`report`) stop at the first timeout, as in run_function_tests."""
    if job.get("compile"):
        status, code, _, errors = run_process(
            job["compile"], os.devnull, limits, cpu_s=int(limits["compile_timeout_s"]) + 1,
            wall_s=limits["compile_timeout_s"], memory_mb=limits["compile_memory_mb"],
            output_cap=limits["max_file_bytes"])
        if status != "ok":
            message = trim_compiler(errors) if status == "exit" else {
                "timeout": f"compiling took longer than {limits['compile_timeout_s']} s",
            }.get(status, f"the compiler was killed ({status} {code})")
            for index in range(len(job["tests"])):
                emit({"i": index, "status": "compile", "error": message})
            return
    if job.get("run") is False:  # compile only: the binary leaves the sandbox before any of it runs
        return
    set_memory(limits["memory_mb"])
    binary = os.path.abspath(job["binary"])
    argv = [binary]
    if job.get("server"):
        # the checker runs from a descriptor opened before any code of the program ran: a file the
        # program puts in its place later is never run as the checker (O_PATH needs no read
        # permission, and the checker's binary is execute-only)
        sealed = high(os.open(binary, os.O_PATH | os.O_CLOEXEC))
        argv = [f"/proc/self/fd/{sealed}", os.path.abspath(job["server"])]
    for index, test in enumerate(job["tests"]):
        if limits.get("uid") is not None and index > 0:
            # the run user is this run's alone: whatever an earlier test left running (a daemon
            # waiting for the next test's files or processes) goes before this test starts
            try:
                os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
        remove("input.txt")
        with open("input.txt", "x", encoding="utf-8") as handle:
            handle.write(test)
        if job.get("report"):
            status, code, stdout, stderr = run_reported(argv, test, limits)
        else:
            status, code, stdout, stderr = run_process(
                argv, "input.txt", limits, cpu_s=limits["test_cpu_s"], wall_s=limits["test_timeout_s"],
                memory_mb=limits["memory_mb"], output_cap=limits["max_output_bytes"])
        result = {"i": index, "stdout": stdout}
        if status == "ok":
            result["status"] = "ok"
        elif status == "exit":
            result.update(status="exception", error=tail(stderr) or f"exited with status {code}")
        elif status == "timeout":
            result.update(status="timeout", error="used up its CPU time" if code == signal.SIGXCPU
                          else f"took longer than {limits['test_timeout_s']} s")
        elif status == "output_limit":
            result.update(status="output_limit", error="printed more than the output limit")
        else:
            name = signal.Signals(code).name if code in signal.Signals._value2member_map_ else str(code)
            result.update(status="crash", error=(tail(stderr) + "\n" if stderr.strip() else "") + f"killed by signal {name}")
        emit(result)
        if job.get("report") and status == "timeout":  # a function task: one time budget per program
            for later in range(index + 1, len(job["tests"])):
                emit({"i": later, "status": "timeout", "error": NOT_RUN, "stdout": ""})
            return


def trim_compiler(text, lines=15, chars=1500):
    """The first errors of a compiler message: what a repair needs, without the cascade."""
    every = [line for line in text.splitlines() if line.strip()]
    kept = "\n".join(every[:lines])
    if len(every) > lines or len(kept) > chars:
        return kept[:chars] + "\n[... the rest of the compiler's message cut]"
    return kept


def tail(text, lines=10):
    return clip("\n".join(text.rstrip("\n").split("\n")[-lines:])) if text.strip() else ""


# ==== "function" protocol: the program in a callee process, the tests here ====

# Plain data is all that crosses between the callee and the tests: exact types only (a subclass
# of int could redefine ==), rebuilt from JSON on this side as fresh, ordinary objects.
_type, _isfinite, _dumps, _loads = type, math.isfinite, json.dumps, json.loads
PLAIN_TYPES = "None, bool, int, float, str, bytes, complex, list, tuple, dict, set, frozenset"
MAX_REPLY_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 200
# Integers past this many bits cross as hexadecimal text: decimal text of more than 4,300 digits
# is refused by Python's int/str conversions, hexadecimal is not
MAX_JSON_INT_BITS = 64


class NotPlain(Exception):
    pass


def to_plain(value, depth=0):
    """`value` as JSON-able data with tags for what JSON lacks; NotPlain for anything else."""
    if depth > MAX_DEPTH:
        raise NotPlain("a value nested too deeply")
    kind = _type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        return value if value.bit_length() <= MAX_JSON_INT_BITS else {"int": format(value, "x")}
    if kind is float:
        return value if _isfinite(value) else {"float": repr(value)}
    if kind is list:
        return [to_plain(item, depth + 1) for item in value]
    if kind is tuple or kind is set or kind is frozenset:
        return {kind.__name__: [to_plain(item, depth + 1) for item in value]}
    if kind is dict:
        return {"dict": [[to_plain(k, depth + 1), to_plain(v, depth + 1)] for k, v in value.items()]}
    if kind is bytes:
        return {"bytes": value.hex()}
    if kind is complex:
        return {"complex": [value.real, value.imag]}
    raise NotPlain(f"a {getattr(kind, '__name__', 'strange')} object")


def from_plain(data, depth=0):
    """Ordinary Python objects rebuilt from `to_plain`'s data (and nothing else)."""
    if depth > MAX_DEPTH:
        raise NotPlain("a value nested too deeply")
    kind = _type(data)
    if data is None or kind in (bool, str, int, float):
        return data
    if kind is list:
        return [from_plain(item, depth + 1) for item in data]
    if kind is dict and len(data) == 1:
        (tag, body), = data.items()
        if tag == "float" and body in ("inf", "-inf", "nan"):
            return float(body)
        if tag == "int" and _type(body) is str:
            return int(body, 16)
        if tag in ("tuple", "set", "frozenset") and _type(body) is list:
            return {"tuple": tuple, "set": set, "frozenset": frozenset}[tag](from_plain(x, depth + 1) for x in body)
        if tag == "dict" and _type(body) is list:
            return {from_plain(k, depth + 1): from_plain(v, depth + 1) for k, v in body}
        if tag == "bytes" and _type(body) is str:
            return bytes.fromhex(body)
        if tag == "complex" and _type(body) is list and len(body) == 2:
            return complex(float(body[0]), float(body[1]))
    raise NotPlain("data that is not a plain value")


def callee_main():
    """The program's own interpreter for a function task: load it, then call its entry point
    with each set of arguments the supervisor sends, answering with the value as plain data."""
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    hello = _loads(requests.readline())
    limits = hello["limits"]

    def answer(reply, printed=b""):
        reply["stdout"] = bytes(printed).decode("utf-8", errors="replace")
        replies.write(_dumps(reply) + "\n")
        replies.flush()

    def captured(action):
        """Run `action` with the program's prints kept; returns (reply, printed bytes)."""
        out = LimitedBytes(limits["max_output_bytes"])
        sys.stdin = io.TextIOWrapper(io.BytesIO(b""), encoding="utf-8")
        sys.stdout = sys.stderr = io.TextIOWrapper(out, encoding="utf-8", errors="replace", write_through=True)
        try:
            reply = action()
        except SystemExit as exc:
            reply = {"raised": clip(f"the program exited (SystemExit {exc.code!r})"), "exc_type": "SystemExit"}
        except OutputLimit:
            reply = {"raised": "printed more than the output limit", "exc_type": "OutputLimit",
                     "limit": "output_limit"}
        except MemoryError:
            reply = {"raised": "MemoryError: ran out of memory", "exc_type": "MemoryError", "limit": "memory"}
        except BaseException as exc:  # the program's own errors, whatever they are
            reply = {"raised": program_traceback(exc), "exc_type": exception_name(exc), **crossing(exc)}
        return reply, out.data

    namespace = {"__name__": "solution", "__builtins__": builtins}
    source = hello["code"]
    linecache.cache[PROGRAM] = (len(source), None, source.splitlines(True), PROGRAM)

    def load():
        exec(compile(source, PROGRAM, "exec"), namespace)
        return {"loaded": True}

    reply, printed = captured(load)
    answer(reply, printed)
    if "loaded" not in reply:
        return
    function = namespace.get(hello["entry_point"])
    while line := requests.readline():
        request = _loads(line)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        spent = int(usage.ru_utime + usage.ru_stime)
        hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
        resource.setrlimit(resource.RLIMIT_CPU, (min(spent + limits["test_cpu_s"], hard), hard))

        def call():
            if not callable(function):  # a failure of the call, not an exception a test may expect
                return {"raised": f"the program defines no function {hello['entry_point']!r}", "exc_type": "NameError"}
            value = function(*from_plain(request["args"]), **from_plain(request["kwargs"]))
            try:
                return {"value": to_plain(value)}
            except NotPlain as why:
                return {"not_plain": str(why)}

        answer(*captured(call))


def crossing(exc):
    """How a program's exception reaches the tests: its nearest built-in exception class (a
    program's own `class Invalid(ValueError)` arrives as ValueError) with its arguments as plain
    data, or its message when they are not. Nothing for what is not an Exception (SystemExit,
    KeyboardInterrupt): the call just fails."""
    try:
        builtin = next((kind.__name__ for kind in _type(exc).__mro__
                        if BUILTIN_EXCEPTIONS.get(kind.__name__) is kind), None)
        if builtin is None:
            return {}
        try:
            args = to_plain(list(exc.args))
            if len(_dumps(args)) > MAX_ERROR_CHARS:
                raise NotPlain("arguments too long")
        except Exception:
            args = [clip(str(exc))]
        return {"builtin": builtin, "args": args}
    except Exception:  # an exception whose class or message misbehaves: its traceback is all that goes
        return {"builtin": "RuntimeError", "args": ["the program raised an exception that cannot be shown"]}


def rebuilt_exception(name, args, message):
    """The program's exception, raised again here as the built-in `name` (RuntimeError when the
    name is not one) with `args`; a class that refuses them gets the message alone."""
    kind = BUILTIN_EXCEPTIONS.get(name) if _type(name) is str else None
    attempts = ((kind, args), (kind, [message]), (RuntimeError, [message])) if kind else ((RuntimeError, [message]),)
    for cls, arguments in attempts:
        try:
            return cls(*arguments)
        except Exception:
            continue
    return RuntimeError(message)


class CalleeOutcome(BaseException):
    """How a call into the program ended when it did not return a value; a BaseException so
    that no `except Exception` in test code mistakes it for a result."""

    def __init__(self, status, error, exc_type=None):
        super().__init__(error)
        self.status, self.error, self.exc_type = status, error, exc_type


class Callee:
    """The supervisor's handle on the program's interpreter: start, load, call, kill."""

    def __init__(self, job, limits):
        self.job, self.limits = job, limits
        self.pid = None
        self.load_failure = None  # a program that cannot be loaded fails every test the same way
        # the first time the program ran out of time: it ends the program's run (one budget per
        # program, so an endless loop costs one test's limit, not one per test)
        self.timed_out = None
        self.printed = []
        # the first way the program failed during the current test (timeout, crash, a reply that
        # is not one, a limit): the test fails on it even when the test's code catches it
        self.failure = None
        # the program's exceptions raised into the current test, with the program's traceback
        self.raised = []

    def fail(self, outcome):
        """Raise `outcome`, the first one of the test kept as its verdict (see `failure`)."""
        if self.failure is None:
            self.failure = outcome
        raise outcome

    def broken_reply(self):
        self.stop()
        self.fail(CalleeOutcome("exception", "the program wrote over its answer channel", "ProtocolError"))

    def start(self, deadline):
        to_callee, from_us = os.pipe()
        to_us, from_callee = os.pipe()
        argv = [sys.executable, "-I", "-S", "-B", "-c", self.job["harness"], "--callee"]
        # a session of its own: its process group for stop(), its own autogroup (see run_process)
        self.pid = os.posix_spawn(sys.executable, argv, dict(os.environ),
                                  file_actions=[(os.POSIX_SPAWN_DUP2, to_callee, 0),
                                                (os.POSIX_SPAWN_DUP2, from_callee, 1),
                                                (os.POSIX_SPAWN_CLOSE, from_us), (os.POSIX_SPAWN_CLOSE, to_us)],
                                  setsid=True, setsigdef=(signal.SIGXFSZ, signal.SIGXCPU, signal.SIGPIPE, signal.SIGINT))
        os.close(to_callee)
        os.close(from_callee)
        self.writer, self.reader, self.buffer = from_us, to_us, b""
        self.send({"code": self.job["code"], "entry_point": self.job["entry_point"], "limits": self.limits})
        reply = self.receive(deadline, loading=True)
        if "loaded" not in reply:
            self.load_failure = CalleeOutcome("exception", clip(str(reply.get("raised", "the program did not load"))),
                                              clip(str(reply.get("exc_type")), MAX_NAME_CHARS))
            self.fail(self.load_failure)

    def send(self, message):
        data = (_dumps(message) + "\n").encode("utf-8")
        try:
            while data:
                data = data[os.write(self.writer, data):]
        except OSError:
            pass  # the callee is gone: receive() says how

    def receive(self, deadline, loading=False):
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self.reader], [], [], max(0.0, remaining))
            if not ready:
                self.stop()
                self.timed_out = CalleeOutcome("timeout", f"took longer than {self.limits['test_timeout_s']} s"
                                               + (" to load" if loading else ""))
                self.fail(self.timed_out)
            chunk = os.read(self.reader, 65536)
            if not chunk:
                status = self.stop()
                what = "while loading" if loading else "during the call"
                if os.WIFSIGNALED(status):
                    died = death_result(0, status)
                    failure = CalleeOutcome(died["status"], f"{died['error']} {what}")
                else:
                    failure = CalleeOutcome("crash", f"the program ended its process {what} "
                                                     f"(exit status {os.WEXITSTATUS(status)})")
                if loading:
                    self.load_failure = failure
                if failure.status == "timeout":  # its CPU time ran out (SIGXCPU)
                    self.timed_out = failure
                self.fail(failure)
            self.buffer += chunk
            if len(self.buffer) > MAX_REPLY_BYTES:
                self.stop()
                self.fail(CalleeOutcome("output_limit", "returned a value larger than the output limit"))
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            reply = _loads(line)
        except Exception:  # not JSON, a number past the digit limit, nesting past the recursion limit
            reply = None
        if _type(reply) is not dict:
            self.broken_reply()
        self.printed.append(clip(str(reply.get("stdout", "")), SHOWN_STDOUT))
        return reply

    def call(self, args, kwargs, deadline):
        """The program's answer to one call: its value, or its exception raised here as the
        built-in type it derives from. Anything else (timeout, crash, limit, a reply that is not
        one) is a CalleeOutcome that fails the test whatever the test's code does with it."""
        if self.timed_out is not None:
            self.fail(self.timed_out)
        if self.load_failure is not None:
            self.fail(self.load_failure)
        if self.pid is None:
            self.start(deadline)
        try:
            request = {"args": to_plain(list(args)), "kwargs": to_plain(dict(kwargs))}
        except NotPlain as why:
            self.fail(CalleeOutcome("error", f"the test passes {why} to the program; only plain data can cross"))
        self.send(request)
        reply = self.receive(deadline)
        if "value" in reply:
            try:
                return from_plain(reply["value"])
            except Exception:  # a bad tag, unhashable keys, too deep: not what a callee sends
                self.broken_reply()
        if "not_plain" in reply:
            self.fail(CalleeOutcome("exception", clip(f"returned {reply['not_plain']}; a test compares only plain "
                                                      f"data ({PLAIN_TYPES})"), "AssertionError"))
        raised = clip(str(reply.get("raised", "the call failed")))
        if "builtin" in reply:
            try:
                arguments = from_plain(reply.get("args"))
            except Exception:
                arguments = None
            if _type(arguments) is not list:
                self.broken_reply()
            message = raised.rstrip("\n").rsplit("\n", 1)[-1]
            exception = rebuilt_exception(reply["builtin"], arguments, message)
            self.raised.append((exception, raised))
            raise exception
        status = reply.get("limit") if reply.get("limit") in ("output_limit", "memory") else "exception"
        self.fail(CalleeOutcome(status, raised, clip(str(reply.get("exc_type")), MAX_NAME_CHARS)))

    def stop(self):
        """Kill the callee with everything it started; its wait status (0 if none)."""
        if self.pid is None:
            return 0
        status = kill_group(self.pid)
        for fd in (self.writer, self.reader):
            try:
                os.close(fd)
            except OSError:
                pass
        self.pid = None
        return status


SHOWN_STDOUT = 4096


def run_function_tests(job, limits, emit):
    """Run each test's code here, with the entry point answered by the program's callee. Once
    the program times out, the tests after it fail as timeouts without running."""
    callee = Callee(job, limits)
    quiet = io.StringIO()
    for index, test in enumerate(job["tests"]):
        if callee.timed_out is not None:
            emit({"i": index, "status": "timeout", "error": NOT_RUN, "stdout": ""})
            continue
        deadline = time.monotonic() + limits["test_timeout_s"]
        callee.printed, callee.failure, callee.raised = [], None, []

        def proxy(*args, **kwargs):
            return callee.call(args, kwargs, deadline)

        namespace = {"__name__": "seidr_test", "__builtins__": builtins}
        result = {"i": index, "status": "ok"}
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = quiet  # the test's own prints must not reach seidr's channel
        try:
            exec(compile(job.get("preamble") or "", "<prompt>", "exec"), namespace)
            namespace[job["entry_point"]] = proxy
            linecache.cache[TEST] = (len(test), None, test.splitlines(True), TEST)
            exec(compile(test, TEST, "exec"), namespace)
        except BaseException as exc:  # the test's own assert, its code tripping over a returned value,
            # or an exception of the program's it did not catch (then the program's traceback says more)
            error = next((text for raised, text in callee.raised if raised is exc), None)
            result.update(status="exception", exc_type=exception_name(exc), error=error or program_traceback(exc))
        finally:
            sys.stdout, sys.stderr = saved
            quiet.seek(0)
            quiet.truncate()
        outcome = callee.failure  # even when the test's code caught it
        if outcome is not None:
            result = {"i": index, "status": outcome.status, "error": outcome.error}
            if outcome.exc_type:
                result["exc_type"] = outcome.exc_type
        result["stdout"] = clip("".join(callee.printed), SHOWN_STDOUT)
        emit(result)
    callee.stop()


def announce(emit, problem=None, caveat=None):
    """Tell seidr the sandbox works, before any program code exists: the limits are all in place
    (`problem`: why not) and the run user (privileges are dropped by now) must be able to read
    the standard library the program will import. Without this line seidr knows a missing
    verdict is the sandbox's fault, not the program's. `caveat`: what this machine lets the
    sandbox go without (seidr logs it)."""
    if problem is not None:
        emit({"broken": problem})
        return False
    stdlib = os.path.dirname(os.__file__)
    try:
        with open(os.__file__, "rb"):
            pass
        os.listdir(stdlib)
    except OSError as exc:
        emit({"broken": f"the run user (uid {os.getuid()}) cannot read the standard library at {stdlib}: "
                        f"{exc.strerror or exc}"})
        return False
    emit({"ready": True, **({"caveat": caveat} if caveat else {})})
    return True


# ==== entry: the protocol by the job's mode (announce, the handshake of all three, is just above) ====

def main():
    if sys.argv[1:] == ["--callee"]:
        callee_main()
        return
    limits = json.loads(sys.argv[1])
    sys.argv = ["program"]  # what a program run as a script would see; nothing of the harness
    job = json.loads(sys.stdin.read())
    out = sys.stdout

    def emit(result):
        out.write(json.dumps(result) + "\n")
        out.flush()

    if job["mode"] == "binary":
        # the compiler needs more memory than a test may use; set_memory lowers it after compiling
        if announce(emit, *apply_limits(limits, max(limits["memory_mb"], limits["compile_memory_mb"]))):
            run_binary_tests(job, limits, emit)
        return
    if not announce(emit, *apply_limits(limits, limits["memory_mb"])):
        return
    tests = job["tests"]
    source = job["code"]
    try:
        code = compile(source, PROGRAM, "exec")
    except (SyntaxError, ValueError) as exc:
        message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        for index in range(len(tests)):
            emit({"i": index, "status": "syntax", "error": message})
        return
    if job["mode"] == "function":
        run_function_tests(job, limits, emit)
        return
    # so tracebacks of the program show its source lines
    linecache.cache[PROGRAM] = (len(source), None, source.splitlines(True), PROGRAM)
    supervise(code, tests, limits, emit)  # stdin/stdout tasks


if __name__ == "__main__":
    main()
