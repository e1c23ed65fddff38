"""PSB2's stdin/stdout text format: one value per line; a list is its length on one line and its
elements space-separated on the next. Floats and booleans are printed the way Python prints them."""

from __future__ import annotations

from typing import Any

from seidr.data.lines import json_type


def format_value(value: Any) -> list[str]:
    """The lines that represent one input or output value."""
    if isinstance(value, list):
        return [str(len(value)), " ".join(_scalar(v) for v in value)]
    return [_scalar(value)]


def _scalar(value: Any) -> str:
    # bool is checked before int/float because it is a subclass of int
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def format_values(values: list[Any]) -> str:
    """Values as the text a program reads (inputs) or must print (outputs), newline-terminated."""
    lines = [line for value in values for line in format_value(value)]
    return "\n".join(lines) + "\n"


def split_row(row: Any) -> tuple[list[Any], list[Any]]:
    """Inputs and outputs of one PSB2 JSON row, in column order (input1.., output1..); ValueError
    saying what is wrong when the row is not an object with both."""
    shape = "expected a JSON object with input1.. and output1.. keys"
    if not isinstance(row, dict):
        raise ValueError(f"{shape}, got {json_type(row)}")
    inputs = [v for k, v in row.items() if k.startswith("input")]
    outputs = [v for k, v in row.items() if k.startswith("output")]
    # a row without outputs would silently expect empty output, and score wrong programs right
    missing = [name for name, values in (("input1..", inputs), ("output1..", outputs)) if not values]
    if missing:
        raise ValueError(f"{shape}, got one without {' or '.join(missing)} (keys: {', '.join(row) or 'none'})")
    return inputs, outputs
