"""Prompts for Python 3 programs."""

from functools import partial

from seidr.prompts import common

LANGUAGE = common.Language(name="Python 3", fence="python")
draft = partial(common.draft, LANGUAGE)
explain = partial(common.explain, LANGUAGE)
repair = partial(common.repair, LANGUAGE)
fix_error = partial(common.fix_error, LANGUAGE)
