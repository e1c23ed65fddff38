"""A small C++ scanner: enough structure for test files and declarations, no more. Comments and
literals masked, brackets matched, file-level functions and a block's statements found. Used by
the C++ executor's test protocol (cpp_protocol.py) and by seidr/data/humaneval.py, which splits the
HumanEval-X tests with it."""

from __future__ import annotations

import re
from dataclasses import dataclass


def split_test(source: str) -> tuple[str, str, int]:
    """(the code before `main`, the body of `main`, the line the body starts at) of a test file."""
    masked = mask(source)
    main = next((f for f in top_level_functions(masked) if f.name == "main"), None)
    if main is None or main.end is None:
        raise ValueError("the test has no complete main() function")
    body_start = main.open_brace + 1
    return source[:main.start], source[body_start:main.end - 1], source.count("\n", 0, body_start) + 1


_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
_NUMBER = re.compile(r"\.?\d(?:'?[\w.]|[eEpP][+-])*")
_CLOSERS = {"(": ")", "[": "]", "{": "}"}


def mask(source: str) -> str:
    """`source` with comments and the insides of string and character literals blanked (same
    length, newlines kept), so brackets, semicolons and keywords can be found by position."""
    out = list(source)
    i, n = 0, len(source)

    def blank(start: int, end: int) -> None:
        for k in range(start, end):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = source[i]
        if source.startswith("//", i):
            end = source.find("\n", i)
            end = n if end < 0 else end
            blank(i, end)
            i = end
        elif source.startswith("/*", i):
            end = source.find("*/", i + 2)
            end = n if end < 0 else end + 2
            blank(i, end)
            i = end
        elif c.isdigit() or (c == "." and i + 1 < n and source[i + 1].isdigit()):
            i = _NUMBER.match(source, i).end()  # 1'000 is a number, not a character literal
        elif c.isalpha() or c == "_":
            match = _IDENTIFIER.match(source, i)
            i = match.end()
            if match.group().endswith("R") and source.startswith('"', i):  # R"delim( ... )delim"
                opening = source.find("(", i)
                delimiter = source[i + 1:opening] if opening >= 0 else ""
                close = source.find(f"){delimiter}\"", opening) if opening >= 0 else -1
                end = n if close < 0 else close + len(delimiter) + 2
                blank(i + 1, end - 1)
                i = end
        elif c in "\"'":
            j = i + 1
            while j < n and source[j] != c and source[j] != "\n":
                j += 2 if source[j] == "\\" else 1
            blank(i + 1, min(j, n))
            i = j + 1
        else:
            i += 1
    return "".join(out)


def match_bracket(masked: str, start: int) -> int:
    """The index after the bracket closing the one at `start`, in masked source."""
    stack = [_CLOSERS[masked[start]]]
    i = start + 1
    while i < len(masked):
        c = masked[i]
        if c in _CLOSERS:
            stack.append(_CLOSERS[c])
        elif c in ")]}":
            if c != stack.pop():
                raise ValueError(f"unbalanced {c!r} at offset {i}")
            if not stack:
                return i + 1
        i += 1
    raise ValueError(f"no closing bracket for {masked[start]!r} at offset {start}")


@dataclass(frozen=True)
class Function:
    """A function definition at file level: name, where it starts, its `{`, and the index after
    its `}` (None when the source ends inside it, as a prompt does)."""

    name: str
    start: int
    open_brace: int
    end: int | None


def top_level_functions(masked: str) -> list[Function]:
    """Function definitions at file level, in order, in masked source."""
    functions: list[Function] = []
    i, statement_start = 0, 0
    while i < len(masked):
        c = masked[i]
        if c in "([":
            i = match_bracket(masked, i)
            continue
        if c == ";":
            statement_start = i + 1
        elif c == "#":  # a preprocessor line is a statement of its own
            end = masked.find("\n", i)
            i = statement_start = len(masked) if end < 0 else end + 1
            continue
        elif c == "{":
            try:
                end: int | None = match_bracket(masked, i)
            except ValueError:
                end = None
            name = _function_name(masked, statement_start, i)
            if name is not None:
                functions.append(Function(name, _skip_space(masked, statement_start), i, end))
            if end is None:
                break
            i = statement_start = end
            continue
        i += 1
    return functions


def _function_name(masked: str, start: int, brace: int) -> str | None:
    """The name of the function whose body opens at `brace`, if the text before it is a
    declarator `... name(params) [const|noexcept|override]*`."""
    head = masked[start:brace].rstrip()
    while (trailing := re.search(r"\b(const|noexcept|override|final)\s*$", head)) is not None:
        head = head[:trailing.start()].rstrip()
    if not head.endswith(")"):
        return None
    depth, k = 0, len(head) - 1
    while k >= 0:
        depth += {")": 1, "(": -1}.get(head[k], 0)
        if depth == 0:
            break
        k -= 1
    name = re.search(r"([A-Za-z_]\w*)\s*$", head[:max(k, 0)])
    if name is None or name.group(1) in ("if", "for", "while", "switch", "catch", "return"):
        return None
    return name.group(1)


def statements(masked: str, start: int, end: int) -> list[tuple[int, int]]:
    """(start, end) of each statement directly inside masked[start:end] (a block's body)."""
    spans = []
    i = _skip_space(masked, start)
    while i < end:
        stop = _statement_end(masked, i)
        if stop > end:
            raise ValueError(f"a statement runs past its block at offset {i}")
        if masked[i:stop].strip() != ";":  # an empty statement
            spans.append((i, stop))
        i = _skip_space(masked, stop)
    return spans


def _statement_end(masked: str, i: int) -> int:
    """The index after the statement that starts at `i`."""
    if masked[i] == "{":
        return match_bracket(masked, i)
    word = _IDENTIFIER.match(masked, i)
    keyword = word.group() if word else ""
    if keyword in ("if", "for", "while", "switch"):
        paren = _skip_space(masked, word.end())
        if masked[paren:paren + 1] != "(":
            raise ValueError(f"{keyword} without ( at offset {i}")
        stop = _statement_end(masked, _skip_space(masked, match_bracket(masked, paren)))
        after = _skip_space(masked, stop)
        if keyword == "if" and re.match(r"else\b", masked[after:]):
            stop = _statement_end(masked, _skip_space(masked, after + 4))
        return stop
    if keyword in ("do", "else", "try"):
        stop = _statement_end(masked, _skip_space(masked, word.end()))
        if keyword == "try":
            while re.match(r"catch\b", masked[(after := _skip_space(masked, stop)):]):
                paren = _skip_space(masked, after + 5)
                stop = match_bracket(masked, _skip_space(masked, match_bracket(masked, paren)))
        elif keyword == "do":
            stop = _statement_end(masked, _skip_space(masked, stop))  # while (...);
        return stop
    while i < len(masked):
        c = masked[i]
        if c in _CLOSERS:
            i = match_bracket(masked, i)
            continue
        if c == ";":
            return i + 1
        if c in ")]}":
            raise ValueError(f"unbalanced {c!r} at offset {i}")
        i += 1
    raise ValueError("a statement without its ';' at the end of the source")


def _skip_space(masked: str, i: int) -> int:
    while i < len(masked) and masked[i].isspace():
        i += 1
    return i
