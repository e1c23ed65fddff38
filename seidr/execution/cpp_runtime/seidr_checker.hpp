// seidr's side of a C++ function task (see seidr/execution/cpp_protocol.py): the test's code, with
// its expected values, compiled without any of the program's code. The program's function the
// test calls is a stub here that sends its arguments to the program's own process (the server,
// started on the first call) and returns the value that comes back, rebuilt as plain data. The
// asserts, the comparisons and the report that the test reached its end all run in this process,
// which the program cannot read or write: it is not dumpable (its binary is not even readable to
// the run user), it does not share its descriptors with the server, and it reports with a secret
// made for this one run that only it can read (fd 3), on a descriptor only it holds (fd 4).
#pragma once
// Only C++ library headers here: this file is part of the tests' translation unit (the system
// side lives in seidr_checker.cpp).
#include <cstddef>
#include <list>
#include <string>
#include <type_traits>

#include "seidr_wire.hpp"

namespace seidr_checker {

// Send one request to the server (started on the first call), return its reply; a server that
// ended, or a reply that cannot be read, ends the test here
std::string exchange(const std::string &request, const char *function);
[[noreturn]] void fail(const std::string &text);
[[noreturn]] void assert_failed(const char *expression, int line, const char *failed);
// The test's code returned: stop the program, read this run's secret, report with it
[[noreturn]] void passed(long index);
long read_index();
void start(int argc, char **argv);

template <class F> struct stub;

template <class R, class... P> struct stub<R(P...)> {
    // Send the arguments, return the value the program returned, and copy back into the caller's
    // objects the arguments it received by reference to non-const
    template <class... A> static R call(std::size_t index, const char *function, A &...args) {
        static_assert(sizeof...(A) == sizeof...(P), "a stub passes every parameter");
        seidr_wire::Writer out;
        seidr_wire::put_count(out, index);
        (seidr_wire::put(out, static_cast<const std::decay_t<P> &>(args)), ...);
        std::string reply = seidr_checker::exchange(out.text, function);
        if (reply.rfind("R ", 0) != 0) {
            fail(std::string("the program's process could not run ") + function + ": " + reply.substr(0, 200));
        }
        seidr_wire::Reader in{reply.data() + 2, reply.data() + reply.size()};
        if constexpr (std::is_void_v<R>) {
            take_back<A...>(in, function, args...);
        } else {
            std::decay_t<R> result{};
            seidr_wire::get(in, result);
            take_back<A...>(in, function, args...);
            if constexpr (std::is_reference_v<R>) {
                static std::list<std::decay_t<R>> kept;  // a returned reference must outlive the call
                kept.push_back(std::move(result));
                return kept.back();
            } else {
                return result;
            }
        }
    }

    template <class... A> static void take_back(seidr_wire::Reader &in, const char *function, A &...args) {
        (read_back<P>(in, args), ...);
        if (!in.ok || in.at != in.end) {
            fail(std::string("the value ") + function + " returned did not arrive whole (the program's process "
                 "answered with something else)");
        }
    }

    template <class Q, class T> static void read_back(seidr_wire::Reader &in, T &arg) {
        if constexpr (seidr_wire::travels_back<Q>) seidr_wire::get(in, arg);
    }
};

}  // namespace seidr_checker
