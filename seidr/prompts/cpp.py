"""Prompts for C++17 programs: PSB2's stdin/stdout tasks and HumanEval-X's functions."""

from functools import partial

from seidr.prompts import common

LANGUAGE = common.Language(name="C++17", fence="cpp")
draft = partial(common.draft, LANGUAGE)
explain = partial(common.explain, LANGUAGE)
repair = partial(common.repair, LANGUAGE)
fix_error = partial(common.fix_error, LANGUAGE)
