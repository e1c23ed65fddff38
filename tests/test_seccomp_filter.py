"""The harness's seccomp program (harness.seccomp_filter), run here by a small classic-BPF
interpreter on made-up system calls for every machine it knows: the jumps land where they
should, and each call gets the answer the sandbox's rules give it. The behaviour in a real
sandbox is tested in test_sandbox_attacks.py."""

from __future__ import annotations

import errno
import struct

import pytest

from seidr.execution import harness
from seidr.execution.harness import (BPF_JEQ, BPF_JGE, BPF_JSET, BPF_LD_W_ABS, BPF_RET, SECCOMP_ALLOW, SECCOMP_ERRNO,
                                     SYSCALLS, assembled, seccomp_filter)

ALLOW, EPERM, ENOSYS = SECCOMP_ALLOW, SECCOMP_ERRNO | errno.EPERM, SECCOMP_ERRNO | errno.ENOSYS
OTHER_PID = 4242
PRIO_PGRP, PRIO_USER, IOPRIO_WHO_PGRP = 1, 2, 2


def verdict(program, nr: int, arch: int, args=(0, 0, 0, 0, 0, 0)) -> int:
    """What `program` answers for system call `nr` of `arch` with `args` (as the kernel lays out
    seccomp_data: nr, arch, the instruction pointer, six 64-bit arguments, little-endian)."""
    data = struct.pack("<iIQ6Q", nr, arch, 0, *[a & (2 ** 64 - 1) for a in args])
    accumulator, at = 0, 0
    for _ in range(len(program)):
        code, true, false, value = program[at]
        assert 0 <= true <= 255 and 0 <= false <= 255
        if code == BPF_LD_W_ABS:
            accumulator = struct.unpack_from("<I", data, value)[0]
            at += 1
        elif code == BPF_RET:
            return value
        else:
            taken = {BPF_JEQ: accumulator == value, BPF_JGE: accumulator >= value,
                     BPF_JSET: bool(accumulator & value)}[code]
            at += 1 + (true if taken else false)
        assert at < len(program), "a jump past the program's end"
    raise AssertionError("the program did not return")


@pytest.fixture(params=sorted(SYSCALLS))
def machine(request):
    return request.param


def call(machine: str, name: str, *args: int) -> int:
    numbers = SYSCALLS[machine]
    return verdict(seccomp_filter(machine), numbers[name], numbers["arch"], (*args, 0, 0, 0, 0, 0, 0)[:6])


def test_what_a_program_may_do_to_itself_is_allowed(machine):
    assert call(machine, "setpriority", harness.PRIO_PROCESS, 0, 10) == ALLOW
    assert call(machine, "ioprio_set", harness.IOPRIO_WHO_PROCESS, 0, 0) == ALLOW
    for name in harness.OWN_PROCESS_ONLY:
        assert call(machine, name, 0, 8, 0) == ALLOW, name
    assert call(machine, "prlimit64", 0, 3, 0x7FFF0000, 0) == ALLOW  # its own limits
    assert call(machine, "prlimit64", OTHER_PID, 3, 0, 0x7FFF0000) == ALLOW  # reading another's
    assert call(machine, "clone", 0x11, 0) == ALLOW  # a fork
    assert call(machine, "unshare", 0x400) == ALLOW  # CLONE_FILES


def test_changing_another_process_is_refused(machine):
    assert call(machine, "setpriority", harness.PRIO_PROCESS, OTHER_PID, 19) == EPERM
    assert call(machine, "setpriority", PRIO_PGRP, 0, 19) == EPERM
    assert call(machine, "setpriority", PRIO_USER, 0, 19) == EPERM
    assert call(machine, "setpriority", PRIO_USER, 61000, 19) == EPERM
    assert call(machine, "ioprio_set", harness.IOPRIO_WHO_PROCESS, OTHER_PID, 7) == EPERM
    assert call(machine, "ioprio_set", IOPRIO_WHO_PGRP, 0, 7) == EPERM
    for name in harness.OWN_PROCESS_ONLY:
        assert call(machine, name, OTHER_PID, 8, 0) == EPERM, name
        assert call(machine, name, 1, 8, 0) == EPERM, name  # the namespace's init: the supervisor
    # a pid whose high half is set is still that pid to the kernel (an int): refused on its low half
    assert call(machine, "sched_setaffinity", (1 << 32) | OTHER_PID, 8, 0) == EPERM
    assert call(machine, "prlimit64", OTHER_PID, 0, 0x7FFF0000, 0) == EPERM
    assert call(machine, "prlimit64", OTHER_PID, 0, 0x7FFF0000 << 32) == EPERM  # an address above 4 GB


def test_user_namespaces_keyrings_and_other_abis_are_refused(machine):
    numbers = SYSCALLS[machine]
    assert call(machine, "unshare", harness.CLONE_NEWUSER) == EPERM
    assert call(machine, "clone", harness.CLONE_NEWUSER | 0x11) == EPERM
    assert call(machine, "clone3", 0, 88) == ENOSYS
    for name in ("add_key", "request_key", "keyctl"):
        assert call(machine, name) == EPERM
    assert verdict(seccomp_filter(machine), numbers["clone"], 0x40000003) == EPERM  # i386
    assert verdict(seccomp_filter(machine), 0x40000000 | numbers["setpriority"], numbers["arch"]) == EPERM  # x32


def test_every_other_call_is_allowed(machine):
    numbers = SYSCALLS[machine]
    looked_at = set(numbers.values())
    program = seccomp_filter(machine)
    for nr in range(0, 500):
        if nr not in looked_at:
            assert verdict(program, nr, numbers["arch"], (OTHER_PID, 1, 2, 3, 4, 5)) == ALLOW, nr


def test_an_unknown_machine_has_no_filter():
    assert seccomp_filter("mips") is None


def test_a_jump_out_of_reach_or_backwards_is_refused():
    with pytest.raises(ValueError):
        assembled(["back", (BPF_LD_W_ABS, 0, 0, 0), (BPF_JEQ, "back", 0, 0), (BPF_RET, 0, 0, 0)])
    with pytest.raises(ValueError):
        assembled([(BPF_JEQ, "far", 0, 0), *[(BPF_LD_W_ABS, 0, 0, 0)] * 300, "far", (BPF_RET, 0, 0, 0)])
