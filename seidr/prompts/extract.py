"""Pulling the program out of an LLM reply."""

from __future__ import annotations

import re

from seidr.llm.base import UNREADABLE

# An opening fence with an optional language tag, then everything up to a closing fence or the
# end of the reply (a reply cut by the token limit has no closing fence).
_FENCE = re.compile(r"^```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:^```|\Z)", re.DOTALL | re.MULTILINE)
# the fence tags taken as each language ("" is an untagged fence, taken as any)
_TAGS = {"python": {"python", "python3", "py", ""}, "cpp": {"cpp", "c++", "cc", ""}}


def extract_code(reply: str, language: str = "python", must_define: str | None = None) -> str:
    """The code in a reply: the first fenced block in the wanted language (or untagged), preferring
    one that defines `must_define`; the whole reply when there is no fence."""
    blocks = [(tag.lower(), body) for tag, body in _FENCE.findall(reply)]
    wanted = _TAGS.get(language, {""})
    candidates = [body for tag, body in blocks if tag in wanted] or [body for _, body in blocks]
    if must_define:
        name = re.escape(must_define)
        # C++: the name, its parameters, then a body (a call or a declaration ends in ; instead)
        definition = rf"\b{name}\s*\([^;{{}}]*\)[\s\w]*\{{" if language == "cpp" else rf"\bdef\s+{name}\b"
        defining = [body for body in candidates if re.search(definition, body)]
        candidates = defining or candidates
    code = candidates[0] if candidates else reply
    return code.strip("\n") + "\n"


def reply_issue(text: str, finish_reason: str | None, language: str | None = None) -> str | None:
    """What is wrong with a reply as a source of code, if anything: "empty", "truncated" (cut by
    the token limit), "no_code_block" (the whole reply is taken as code), "unreadable_text" (it held
    characters no file can, now U+FFFD) or, given the `language` asked for, "other_language"
    (every fenced block is tagged as another language, and the first is scored as this one)."""
    if not text.strip():
        return "empty"
    if finish_reason == "length":
        return "truncated"
    if UNREADABLE in text:
        return "unreadable_text"
    tags = [tag.lower() for tag, _ in _FENCE.findall(text)]
    if not tags:
        return "no_code_block"
    if language is not None and not any(tag in _TAGS.get(language, {""}) for tag in tags):
        return "other_language"
    return None
