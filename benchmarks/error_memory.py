"""seidr's own peak memory when every program raises a huge error: a scripted 8-program job
(no LLM) on a stdin/stdout task with 50 examples and 200 held-out tests, every program raising
an error of `size` characters on every test. Prints the peak RSS of seidr's process and the size
of programs.jsonl; with `0` it is the same job with an empty message, for comparison.

    python -m benchmarks.error_memory [size, default 600000]
"""

from __future__ import annotations

import itertools
import json
import resource
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seidr import dev  # noqa: E402
from tests.scripted import ScriptedBackend  # noqa: E402


def main() -> None:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 600_000
    drafts = itertools.count()

    def reply(step: str, messages: list, index: int) -> str:
        if step == "explain":
            return "It raises an error."
        return f"```python\nraise ValueError('x' * {size} + '{next(drafts)}')\n```"  # a new program each time

    examples = [(str(n), str(2 * n)) for n in range(50)]
    tests = [(str(n), str(2 * n)) for n in range(50, 250)]
    with tempfile.TemporaryDirectory() as folder:
        result = dev.develop("Read an integer and print twice its value.", examples=examples, tests=tests,
                             model=ScriptedBackend(reply), max_programs=8, output_dir=folder,
                             overrides=["model.cache=false", "tracking=none"])
        written = sum(path.stat().st_size for path in Path(folder).rglob("programs.jsonl"))
    print(json.dumps({"error_chars": size, "programs": len(result.programs),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "programs_jsonl_kb": round(written / 1024, 1)}))


if __name__ == "__main__":
    main()
