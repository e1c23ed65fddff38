"""Reading data files line by line, so that a bad byte or a bad row is reported with its line number."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from seidr.errors import SeidrError

_BOM = b"\xef\xbb\xbf"


def numbered_lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """The lines of a file's bytes, numbered from 1, without a leading byte-order mark.

    Split on bytes, not decoded text: str.splitlines also breaks at U+2028 and other separators
    a JSON string may hold verbatim, which would cut a valid line in two and shift every number."""
    for number, raw in enumerate(data.removeprefix(_BOM).splitlines(), 1):
        yield number, raw


def utf8(raw: bytes) -> str:
    """One line as text; ValueError saying where it is not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"not valid UTF-8 (byte 0x{raw[error.start]:02x} at column {error.start + 1}); "
                         "save the file as UTF-8") from None


def json_line(raw: bytes) -> Any:
    """One line's JSON value; ValueError saying what is wrong with it."""
    try:
        return json.loads(utf8(raw))
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error.msg} at column {error.colno})") from None


def json_file(path: Path) -> Any:
    """A whole JSON file's value; SeidrError naming the file and line when it cannot be read."""
    data = path.read_bytes().removeprefix(_BOM)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise SeidrError(f"{path} line {line}: not valid UTF-8 (byte 0x{data[error.start]:02x}); "
                         "save the file as UTF-8") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise SeidrError(f"{path} line {error.lineno}: not valid JSON ({error.msg} at column {error.colno})") \
            from None


def json_type(value: Any) -> str:
    """What a JSON value is, in the words a user reading the file would use."""
    if isinstance(value, bool):
        return "true/false"
    names = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
