// Values between seidr's test checker and the program's server (see seidr/execution/cpp_protocol.py),
// as text both sides write and read with the same code. Only plain data crosses: integers, floating
// point numbers (in hexadecimal, so that a float arrives bit for bit), strings (length first, any
// bytes), the standard containers, pairs and tuples of them, and std::any or boost::any (HumanEval-X
// uses it) holding one of the plain scalars or a string. Anything else does not compile, and an any
// holding anything else does not arrive.
//
// The reader trusts nothing: the program's side may send any bytes. A count larger than the bytes
// left, a number out of range, a bool other than 0 or 1, a missing separator: the value is not
// read (`ok` turns false) and the checker fails the test.
#pragma once
#include <any>
#include <array>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <set>
#include <string>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>
// boost::any only where the program's own headers brought it: including it here would bring C
// functions (strlen...) into the tests' code that the tests did not ask for
#ifdef BOOST_ANY_INCLUDED
#define SEIDR_WIRE_BOOST_ANY 1
#endif

namespace seidr_wire {

struct Writer {
    std::string text;
};

struct Reader {
    const char *at;
    const char *end;
    bool ok = true;
    std::size_t left() const { return ok ? static_cast<std::size_t>(end - at) : 0; }
};

template <class T> struct is_sequence : std::false_type {};
template <class T, class A> struct is_sequence<std::vector<T, A>> : std::true_type {};
template <class T, class A> struct is_sequence<std::list<T, A>> : std::true_type {};
template <class T, class A> struct is_sequence<std::deque<T, A>> : std::true_type {};

template <class T> struct is_set : std::false_type {};
template <class T, class C, class A> struct is_set<std::set<T, C, A>> : std::true_type {};
template <class T, class C, class A> struct is_set<std::multiset<T, C, A>> : std::true_type {};
template <class T, class H, class E, class A> struct is_set<std::unordered_set<T, H, E, A>> : std::true_type {};

template <class T> struct is_map : std::false_type {};
template <class K, class V, class C, class A> struct is_map<std::map<K, V, C, A>> : std::true_type {};
template <class K, class V, class C, class A> struct is_map<std::multimap<K, V, C, A>> : std::true_type {};
template <class K, class V, class H, class E, class A>
struct is_map<std::unordered_map<K, V, H, E, A>> : std::true_type {};

template <class T> struct is_pair : std::false_type {};
template <class A, class B> struct is_pair<std::pair<A, B>> : std::true_type {};
template <class T> struct is_tuple : std::false_type {};
template <class... T> struct is_tuple<std::tuple<T...>> : std::true_type {};
template <class T> struct is_array : std::false_type {};
template <class T, std::size_t N> struct is_array<std::array<T, N>> : std::true_type {};

template <class T> struct is_any : std::is_same<T, std::any> {};
#ifdef SEIDR_WIRE_BOOST_ANY
template <> struct is_any<boost::any> : std::true_type {};
#endif

template <class T> inline constexpr bool unsupported = false;

template <class T> void put(Writer &out, const T &value);
template <class T> void get(Reader &in, T &value);

template <class T, class Any> const T *held(const Any &value) {
    if constexpr (std::is_same_v<Any, std::any>) {
        return std::any_cast<T>(&value);
    } else {
#ifdef SEIDR_WIRE_BOOST_ANY
        return boost::any_cast<T>(&value);
#endif
    }
}

template <class Any> bool holds_nothing(const Any &value) {
    if constexpr (std::is_same_v<Any, std::any>) {
        return !value.has_value();
    } else {
        return value.empty();
    }
}

// An any: a tag for the type it holds, then the value ("e" when it holds nothing, "?" when it
// holds a type not listed here, which the reader refuses)
template <class Any> void put_any(Writer &out, const Any &value) {
    if (holds_nothing(value)) {
        out.text += "e ";
    } else if (const auto *v = held<int>(value)) {
        out.text += "i ";
        seidr_wire::put(out, *v);
    } else if (const auto *v = held<double>(value)) {
        out.text += "d ";
        seidr_wire::put(out, *v);
    } else if (const auto *v = held<float>(value)) {
        out.text += "f ";
        seidr_wire::put(out, *v);
    } else if (const auto *v = held<std::string>(value)) {
        out.text += "s ";
        seidr_wire::put(out, *v);
    } else if (const auto *v = held<char>(value)) {
        out.text += "c ";
        seidr_wire::put(out, *v);
    } else if (const auto *v = held<bool>(value)) {
        out.text += "b ";
        seidr_wire::put(out, *v);
    } else if (const auto *v = held<long>(value)) {
        out.text += "l ";
        seidr_wire::put(out, *v);
    } else if (const auto *v = held<long long>(value)) {
        out.text += "L ";
        seidr_wire::put(out, *v);
    } else {
        out.text += "? ";
    }
}

template <class Any, class T> void get_held(Reader &in, Any &value) {
    T plain{};
    seidr_wire::get(in, plain);
    value = plain;
}

template <class Any> void get_any(Reader &in, Any &value) {
    if (in.left() < 2 || in.at[1] != ' ') {
        in.ok = false;
        return;
    }
    char tag = in.at[0];
    in.at += 2;
    switch (tag) {
        case 'e': value = Any(); break;
        case 'i': get_held<Any, int>(in, value); break;
        case 'd': get_held<Any, double>(in, value); break;
        case 'f': get_held<Any, float>(in, value); break;
        case 's': get_held<Any, std::string>(in, value); break;
        case 'c': get_held<Any, char>(in, value); break;
        case 'b': get_held<Any, bool>(in, value); break;
        case 'l': get_held<Any, long>(in, value); break;
        case 'L': get_held<Any, long long>(in, value); break;
        default: in.ok = false;
    }
}

inline void put_count(Writer &out, std::size_t n) {
    char digits[24];
    auto done = std::to_chars(digits, digits + sizeof digits, static_cast<unsigned long long>(n));
    out.text.append(digits, done.ptr);
    out.text += ' ';
}

template <class T> void put(Writer &out, const T &value) {
    if constexpr (std::is_same_v<T, bool>) {
        out.text += value ? "1 " : "0 ";
    } else if constexpr (std::is_enum_v<T>) {
        seidr_wire::put(out, static_cast<std::underlying_type_t<T>>(value));
    } else if constexpr (std::is_integral_v<T>) {
        char digits[48];
        auto done = std::to_chars(digits, digits + sizeof digits, value);
        out.text.append(digits, done.ptr);
        out.text += ' ';
    } else if constexpr (std::is_floating_point_v<T>) {
        char digits[64];
        auto done = std::to_chars(digits, digits + sizeof digits, value, std::chars_format::hex);
        out.text.append(digits, done.ptr);
        out.text += ' ';
    } else if constexpr (std::is_same_v<T, std::string>) {
        put_count(out, value.size());
        out.text += value;
    } else if constexpr (is_sequence<T>::value || is_set<T>::value || is_array<T>::value) {
        put_count(out, value.size());
        for (const auto &element : value) seidr_wire::put(out, static_cast<const typename T::value_type &>(element));
    } else if constexpr (is_map<T>::value) {
        put_count(out, value.size());
        for (const auto &entry : value) {
            seidr_wire::put(out, entry.first);
            seidr_wire::put(out, entry.second);
        }
    } else if constexpr (is_pair<T>::value) {
        seidr_wire::put(out, value.first);
        seidr_wire::put(out, value.second);
    } else if constexpr (is_tuple<T>::value) {
        std::apply([&out](const auto &...part) { (seidr_wire::put(out, part), ...); }, value);
    } else if constexpr (is_any<T>::value) {
        put_any(out, value);
    } else {
        static_assert(unsupported<T>, "seidr passes only plain data between a test and the program: numbers, "
                                      "bool, char, std::string, std containers, pairs and tuples of them, and any");
    }
}

inline const char *token_end(Reader &in) {
    const char *stop = in.at;
    while (stop < in.end && *stop != ' ') stop++;
    if (stop == in.end) in.ok = false;
    return stop;
}

inline std::size_t get_count(Reader &in) {
    if (!in.ok) return 0;
    const char *stop = token_end(in);
    unsigned long long n = 0;
    auto done = std::from_chars(in.at, stop, n);
    if (!in.ok || done.ec != std::errc() || done.ptr != stop || n > static_cast<unsigned long long>(in.end - stop)) {
        in.ok = false;  // never more elements than bytes left: no huge allocation from a short reply
        return 0;
    }
    in.at = stop + 1;
    return static_cast<std::size_t>(n);
}

template <class T> void get(Reader &in, T &value) {
    if (!in.ok) return;
    if constexpr (std::is_same_v<T, bool>) {
        if (in.left() < 2 || (in.at[0] != '0' && in.at[0] != '1') || in.at[1] != ' ') {
            in.ok = false;
            return;
        }
        value = in.at[0] == '1';
        in.at += 2;
    } else if constexpr (std::is_enum_v<T>) {
        std::underlying_type_t<T> raw{};
        seidr_wire::get(in, raw);
        value = static_cast<T>(raw);
    } else if constexpr (std::is_integral_v<T> || std::is_floating_point_v<T>) {
        const char *stop = token_end(in);
        if (!in.ok) return;
        std::from_chars_result done;
        if constexpr (std::is_integral_v<T>) {
            done = std::from_chars(in.at, stop, value);
        } else {
            done = std::from_chars(in.at, stop, value, std::chars_format::hex);
        }
        if (done.ec != std::errc() || done.ptr != stop) {
            in.ok = false;
            return;
        }
        in.at = stop + 1;
    } else if constexpr (std::is_same_v<T, std::string>) {
        std::size_t n = get_count(in);
        if (!in.ok) return;
        value.assign(in.at, n);
        in.at += n;
    } else if constexpr (is_sequence<T>::value || is_set<T>::value || is_map<T>::value) {
        std::size_t n = get_count(in);
        value.clear();
        for (std::size_t k = 0; k < n && in.ok; k++) {
            if constexpr (is_map<T>::value) {
                typename T::key_type key{};
                typename T::mapped_type mapped{};
                seidr_wire::get(in, key);
                seidr_wire::get(in, mapped);
                value.emplace(std::move(key), std::move(mapped));
            } else {
                typename T::value_type element{};
                seidr_wire::get(in, element);
                value.insert(value.end(), std::move(element));
            }
        }
    } else if constexpr (is_array<T>::value) {
        if (get_count(in) != value.size()) {
            in.ok = false;
            return;
        }
        for (auto &element : value) seidr_wire::get(in, element);
    } else if constexpr (is_pair<T>::value) {
        seidr_wire::get(in, value.first);
        seidr_wire::get(in, value.second);
    } else if constexpr (is_tuple<T>::value) {
        std::apply([&in](auto &...part) { (seidr_wire::get(in, part), ...); }, value);
    } else if constexpr (is_any<T>::value) {
        get_any(in, value);
    } else {
        static_assert(unsupported<T>, "seidr passes only plain data between a test and the program: numbers, "
                                      "bool, char, std::string, std containers, pairs and tuples of them, and any");
    }
}

// A parameter the callee may change for its caller: a reference to non-const. Its value travels
// back after the call, so `void sort_in_place(vector<int> &v)` works across the two processes.
template <class P>
inline constexpr bool travels_back = std::is_lvalue_reference_v<P> && !std::is_const_v<std::remove_reference_t<P>>;

}  // namespace seidr_wire
