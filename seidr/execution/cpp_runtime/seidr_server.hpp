// The program's side of a C++ function task (see seidr/execution/cpp_protocol.py): linked with the
// program, it answers the checker's calls. Each request on fd 0 names a function and carries its
// arguments; the answer on fd 3 carries the returned value (and the parameters passed by reference
// to non-const). Nothing here is trusted: the program shares this
// process and may replace any of it, which lets it choose the values it answers with, as returning
// them would. The test's expected values and its verdict live in the checker, another process.
#pragma once
#include <cerrno>
#include <cstdio>
#include <iostream>
#include <string>
#include <tuple>
#include <type_traits>
#include <unistd.h>

#include "seidr_wire.hpp"

namespace seidr_server {

inline bool read_exactly(char *into, std::size_t n) {
    while (n > 0) {
        ssize_t got = ::read(0, into, n);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return false;
        into += got;
        n -= static_cast<std::size_t>(got);
    }
    return true;
}

// One request: "<payload length>\n<payload>"; false at the end of the requests
inline bool read_request(std::string &payload) {
    std::string length;
    char c;
    while (read_exactly(&c, 1)) {
        if (c == '\n') {
            payload.assign(std::stoul(length), '\0');
            return read_exactly(payload.data(), payload.size());
        }
        length += c;
    }
    return false;
}

inline void answer(const std::string &payload) {
    // what the program printed during the call reaches the test's output even if this process
    // is killed at the end of the test
    std::cout.flush();
    std::fflush(nullptr);
    std::string message = std::to_string(payload.size()) + "\n" + payload;
    const char *at = message.data();
    std::size_t left = message.size();
    while (left > 0) {
        ssize_t done = ::write(3, at, left);
        if (done < 0 && errno == EINTR) continue;
        if (done <= 0) ::_exit(0);  // the checker is gone: nobody to answer
        at += done;
        left -= static_cast<std::size_t>(done);
    }
}

template <class F> struct serve;

template <class R, class... P> struct serve<R(P...)> {
    template <std::size_t... I>
    static void back(seidr_wire::Writer &out, std::tuple<std::decay_t<P>...> &args, std::index_sequence<I...>) {
        ((seidr_wire::travels_back<P> ? seidr_wire::put(out, std::get<I>(args)) : void()), ...);
    }

    // Read the arguments, call, answer "R <value> <changed arguments>"
    static void call(R (*function)(P...), seidr_wire::Reader &in, seidr_wire::Writer &out) {
        std::tuple<std::decay_t<P>...> args;
        std::apply([&in](auto &...arg) { (seidr_wire::get(in, arg), ...); }, args);
        if (!in.ok || in.at != in.end) {
            out.text = "B the arguments did not arrive whole";
            return;
        }
        out.text = "R ";
        if constexpr (std::is_void_v<R>) {
            std::apply(function, args);
        } else {
            decltype(auto) result = std::apply(function, args);
            seidr_wire::put(out, static_cast<const std::decay_t<R> &>(result));
        }
        back(out, args, std::index_sequence_for<P...>{});
    }
};

// The request loop; `dispatch(index, in, out)` calls the function the checker numbered `index`
template <class Dispatch> int run(Dispatch dispatch) {
    // unbuffered, so that what the program prints before it loops forever or crashes is kept
    std::fflush(nullptr);
    std::setvbuf(stdout, nullptr, _IONBF, 0);
    std::string payload;
    while (read_request(payload)) {
        seidr_wire::Reader in{payload.data(), payload.data() + payload.size()};
        std::size_t index = seidr_wire::get_count(in);
        seidr_wire::Writer out;
        // an exception that escapes the program's function ends this process as it would end any
        // C++ program (std::terminate names it on stderr); the checker reports that end as the test's
        if (!in.ok || !dispatch(index, in, out)) out.text = "B no such function";
        answer(out.text);
    }
    return 0;
}

}  // namespace seidr_server
