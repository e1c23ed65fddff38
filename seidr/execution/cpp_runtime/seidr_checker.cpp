// seidr's checker, the part that talks to the system (see seidr_checker.hpp): starting the
// server, the calls' pipes, the end of a test. A translation unit of its own, so that the POSIX
// and C headers it needs never reach the tests' code, where a name they declare (strlen, read,
// sleep...) could take a call meant for the program's function of the same name.
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/sockios.h>
#include <stddef.h>
#include <string>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utility>
#include <vector>

#include "seidr_checker.hpp"

extern char **environ;

namespace seidr_checker {

// The longest reply accepted from the program (a returned value and the arguments it changed)
constexpr std::size_t MAX_REPLY_BYTES = 64u << 20;

const char *server_path = nullptr;
pid_t server = -1;
int to_server = -1;
int from_server = -1;

void say(const std::string &text) {
    std::string line = "\n" + text + "\n";
    const char *at = line.data();
    std::size_t left = line.size();
    while (left > 0) {
        ssize_t done = ::write(2, at, left);
        if (done <= 0) return;
        at += done;
        left -= static_cast<std::size_t>(done);
    }
}

[[noreturn]] void fail(const std::string &text) {
    say(text);
    std::fflush(nullptr);
    ::_exit(1);
}

// The server's end, as this test's end: killed by a signal, this process dies of the same signal
// (the harness then reports the crash, the timeout of SIGXCPU, the output limit of SIGXFSZ); an
// exit with a status, the same status; an exit with status 0 before the call returned, a failure.
[[noreturn]] void server_ended_with(int status, const char *function) {
    if (server > 0) ::kill(-server, SIGKILL);  // what it left running in its group (its own since setsid)
    std::fflush(nullptr);
    if (WIFSIGNALED(status)) {
        int number = WTERMSIG(status);
        std::signal(number, SIG_DFL);
        ::kill(::getpid(), number);
        fail("the program was killed by signal " + std::to_string(number) + " while " + function + " ran");
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0) ::_exit(WEXITSTATUS(status));
    fail(std::string("the program ended (exit status 0) before ") + function +
         " returned: the test did not reach its end");
}

[[noreturn]] void server_ended(const char *function) {
    int status = 0;
    while (::waitpid(server, &status, 0) < 0 && errno == EINTR) {
    }
    server_ended_with(status, function);
}

// The server's seccomp filter, stacked on the harness's (which every process of the run has): no
// system call of the program may send a signal to this process, which runs as the same user and,
// unlike the harness, is not its PID namespace's init. Refused with EPERM: kill, tkill, tgkill,
// rt_sigqueueinfo and rt_tgsigqueueinfo naming this process, its process group or every process
// (kill -1); pidfd_open of this process, and pidfd_send_signal (a /proc/<pid> folder is a pidfd
// too); making this process or its group the owner of a file's SIGIO and SIGURG (fcntl F_SETOWN,
// and F_SETOWN_EX and the ioctls FIOSETOWN and SIOCSPGRP, whose pid a filter cannot read). A
// program may still signal its own children and threads. (Its priority, CPUs and limits: the
// harness's filter.)
class ServerFilter {
  public:
    explicit ServerFilter(pid_t checker)
        : self(static_cast<__u32>(checker)), group(static_cast<__u32>(-checker)) {}

    // The whole program; empty on a machine without a filter (the harness does not run there)
    std::vector<sock_filter> program() const {
        std::vector<sock_filter> steps;
#if defined(__x86_64__)
        const __u32 native = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
        const __u32 native = AUDIT_ARCH_AARCH64;
#else
        return steps;
#endif
        const __u32 everyone = static_cast<__u32>(-1);
        steps = {load(offsetof(seccomp_data, arch)), is(native, 1, 0), refuse()};
        refuse_when(steps, SYS_kill, {{0, self}, {0, group}, {0, everyone}});
        refuse_when(steps, SYS_tkill, {{0, self}});
        refuse_when(steps, SYS_rt_sigqueueinfo, {{0, self}});
        refuse_when(steps, SYS_tgkill, {{0, self}, {1, self}});
        refuse_when(steps, SYS_rt_tgsigqueueinfo, {{0, self}, {1, self}});
        refuse_when(steps, SYS_pidfd_open, {{0, self}});
        refuse_when(steps, SYS_pidfd_send_signal, {});
        refuse_when(steps, SYS_ioctl, {{1, FIOSETOWN}, {1, SIOCSPGRP}});
        // fcntl: F_SETOWN_EX always, F_SETOWN to this process or its group
        append(steps, SYS_fcntl, {
            load(argument(1)),         // [0] the command
            is(F_SETOWN_EX, 5, 0),     // -> [7]
            is(F_SETOWN, 0, 3),        // else -> [6]
            load(argument(2)),         // [3] the owner
            is(self, 2, 0),            // -> [7]
            is(group, 1, 0),           // -> [7]
            allow(),                   // [6]
            refuse(),                  // [7]
        });
        steps.push_back(allow());
        return steps;
    }

  private:
    __u32 self, group;

    static sock_filter load(std::size_t offset) {
        return BPF_STMT(BPF_LD | BPF_W | BPF_ABS, static_cast<__u32>(offset));
    }
    static sock_filter is(__u32 value, __u8 yes, __u8 no) { return BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, value, yes, no); }
    static sock_filter allow() { return BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW); }
    static sock_filter refuse() { return BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM); }
    // the low half of an argument: a pid, a command, an owner are ints to the kernel
    static std::size_t argument(int index) { return offsetof(seccomp_data, args) + 8 * static_cast<std::size_t>(index); }

    // `block` runs for system call `nr` only, ending in a return of its own; other calls skip it
    static void append(std::vector<sock_filter> &steps, long nr, const std::vector<sock_filter> &block) {
        steps.push_back(load(offsetof(seccomp_data, nr)));
        steps.push_back(is(static_cast<__u32>(nr), 0, static_cast<__u8>(block.size())));
        steps.insert(steps.end(), block.begin(), block.end());
    }

    // System call `nr` refused when one of `checks` (argument, value) holds (always when none are
    // given), allowed otherwise
    static void refuse_when(std::vector<sock_filter> &steps, long nr,
                            std::initializer_list<std::pair<int, __u32>> checks) {
        std::vector<sock_filter> block;
        int loaded = -1;
        for (auto [index, value] : checks) {
            if (index != loaded) block.push_back(load(argument(index)));
            loaded = index;
            block.push_back(is(value, 0, 0));
        }
        const std::size_t refused_at = checks.size() == 0 ? 0 : block.size() + 1;
        for (std::size_t at = 0; at < block.size(); at++) {
            if (block[at].code == (BPF_JMP | BPF_JEQ | BPF_K)) block[at].jt = static_cast<__u8>(refused_at - at - 1);
        }
        if (checks.size() != 0) block.push_back(allow());
        block.push_back(refuse());
        append(steps, nr, block);
    }
};

// In the server's process, before it runs any code of the program (`steps` made before the fork)
bool confine_server(std::vector<sock_filter> &steps) {
    if (steps.empty()) return false;
    sock_fprog program{static_cast<unsigned short>(steps.size()), steps.data()};
    return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
           ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program) == 0;
}

void start_server(const char *function) {
    int requests[2], replies[2];
    if (server_path == nullptr || ::pipe2(requests, O_CLOEXEC) != 0 || ::pipe2(replies, O_CLOEXEC) != 0) {
        fail("seidr's test checker could not start the program (no server path or no pipes)");
    }
    std::vector<sock_filter> confinement = ServerFilter(::getpid()).program();
    std::fflush(nullptr);
    server = ::fork();
    if (server < 0) fail(std::string("the program could not be started to run ") + function + ": fork failed");
    if (server == 0) {
        // the server keeps stdout and stderr (what the program prints is the test's output) and
        // gets its requests on fd 0 and its answer pipe on fd 3 (over the secret); every other
        // descriptor of this process (the report on fd 4 among them) is closed before the exec
        ::dup2(requests[0], 0);
        ::dup2(replies[1], 3);
#ifdef SYS_close_range
        if (::syscall(SYS_close_range, 4u, ~0u, 0u) != 0)
#endif
            for (int fd = 4; fd < 65536; fd++) ::close(fd);
        std::signal(SIGPIPE, SIG_DFL);
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        // setsid(): its own process group (kill(0) reaches only it) and its own scheduling
        // autogroup in the kernel, whose priority the program may then lower for itself only
        if (::setsid() < 0 || !confine_server(confinement)) {
            say("seidr's test checker could not confine the program's process (a session of its own, seccomp)");
            ::_exit(127);
        }
        char *argv[] = {const_cast<char *>(server_path), nullptr};
        ::execve(server_path, argv, environ);
        ::_exit(127);
    }
    ::close(requests[0]);
    ::close(replies[1]);
    to_server = requests[1];
    from_server = replies[0];
}

bool write_all(int fd, const std::string &text) {
    const char *at = text.data();
    std::size_t left = text.size();
    while (left > 0) {
        ssize_t done = ::write(fd, at, left);
        if (done < 0 && errno == EINTR) continue;
        if (done <= 0) return false;
        at += done;
        left -= static_cast<std::size_t>(done);
    }
    return true;
}

bool read_exactly(char *into, std::size_t n) {
    while (n > 0) {
        ssize_t got = ::read(from_server, into, n);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return false;
        into += got;
        n -= static_cast<std::size_t>(got);
    }
    return true;
}

// Send one request, return the program's reply ("<length>\n<payload>" both ways)
std::string exchange(const std::string &request, const char *function) {
    if (server < 0) start_server(function);
    if (!write_all(to_server, std::to_string(request.size()) + "\n" + request)) server_ended(function);
    std::size_t length = 0;
    int digits = 0;
    char c;
    for (;;) {
        if (!read_exactly(&c, 1)) server_ended(function);
        if (c == '\n' && digits > 0) break;
        if (c < '0' || c > '9' || ++digits > 9) fail(std::string("the program's reply to ") + function + " could not be read");
        length = length * 10 + static_cast<std::size_t>(c - '0');
    }
    if (length > MAX_REPLY_BYTES) {
        fail(std::string("the program's reply to ") + function + " was larger than " +
             std::to_string(MAX_REPLY_BYTES >> 20) + " MB");
    }
    std::string reply(length, '\0');
    if (!read_exactly(reply.data(), length)) server_ended(function);
    // the process the checker started must still be there: a reply written by a process it left
    // behind (a forked child that goes on after its parent exits) is not the called function's
    int status;
    if (::waitpid(server, &status, WNOHANG) == server) {
        server_ended_with(status, function);
    }
    return reply;
}

[[noreturn]] void assert_failed(const char *expression, int line, const char *failed) {
    std::fflush(nullptr);
    say(std::string(failed) + expression + " (test.cpp line " + std::to_string(line) + ")");
    ::_exit(1);
}

// The test's code returned: stop the program, read this run's secret, report with it
[[noreturn]] void passed(long index) {
    if (server > 0) {
        ::kill(-server, SIGKILL);  // its whole group (its own since setsid), children included
        int status;
        while (::waitpid(server, &status, 0) < 0 && errno == EINTR) {
        }
    }
    std::fflush(nullptr);
    char secret[80];
    long length = 0;
    while (length < 79) {
        ssize_t got = ::read(3, secret + length, static_cast<std::size_t>(79 - length));
        if (got <= 0) break;
        length += got;
        if (secret[length - 1] == '\n') break;
    }
    if (length < 2 || secret[length - 1] != '\n') fail("the test's secret was gone when the test ended");
    std::string line = "seidr-pass " + std::to_string(index) + " " + std::to_string(::getpid()) + " " +
                       std::string(secret, static_cast<std::size_t>(length));
    if (!write_all(4, line)) ::_exit(3);
    ::_exit(0);
}

long read_index() {
    char text[32] = {0};
    ssize_t got = ::read(0, text, sizeof text - 1);
    if (got <= 0 || text[0] < '0' || text[0] > '9') return -1;
    return std::strtol(text, nullptr, 10);
}

// Before anything else: not dumpable (the server, and any other process of the run user, cannot
// open /proc/<this pid>/mem or /fd), and a dead server is an EPIPE here, not a signal
void start(int argc, char **argv) {
    ::prctl(PR_SET_DUMPABLE, 0);
    std::signal(SIGPIPE, SIG_IGN);
    server_path = argc > 1 ? argv[1] : nullptr;
}

}  // namespace seidr_checker
