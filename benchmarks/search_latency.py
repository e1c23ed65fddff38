"""How long the SEIDR loop waits on the LLM: a stand-in OpenAI-compatible server answers every
request after 0.3 s with a wrong program; seidr searches PSB2 fizz-buzz with branching factor 2
up to 20 programs on 50 validation tests. Prints wall time, requests, and the most requests in
flight, with the default concurrency and with model.max_concurrency=1.

    python -m benchmarks.search_latency
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seidr.app import run_job  # noqa: E402
from seidr.dev import compose_config  # noqa: E402
from tests.conftest import find_data_dir  # noqa: E402
from tests.servers.openai_server import OpenAIServer  # noqa: E402

WRONG = "```python\nprint(input())\n```"
DELAY_S = 0.3


def measure(max_concurrency: int | None) -> None:
    data_dir = find_data_dir()
    if data_dir is None:
        sys.exit("no data: set DATA_PATH (see README)")
    with OpenAIServer(lambda messages, body, index: WRONG, model="stand-in") as server, \
            tempfile.TemporaryDirectory() as out:
        server.delay_s = DELAY_S
        overrides = ["problem=fizz-buzz", "model=openai", "model.name=stand-in", "model.api_key=none",
                     f"model.base_url={server.base_url}", "model.cache=false", "search.branching_factor=2",
                     "search.max_programs=20", "search.valid_examples=50", f"paths.data_dir={data_dir}",
                     f"paths.output_root={out}"]
        if max_concurrency is not None:
            overrides.append(f"model.max_concurrency={max_concurrency}")
        cfg = compose_config(overrides)
        started = time.perf_counter()
        result = asyncio.run(run_job(cfg, Path(out) / "run")).result
        wall = time.perf_counter() - started
    label = f"max_concurrency={cfg.model.max_concurrency}"
    print(f"{label:<20} wall {wall:6.2f} s  programs {result['programs']:3d}  "
          f"requests {len(server.posts('/v1/chat/completions')):3d}  most in flight {server.max_in_flight}")


if __name__ == "__main__":
    print(f"stand-in server: {DELAY_S} s per request; fizz-buzz, bf=2, 20 programs, 50 validation tests; "
          f"{os.cpu_count()} cores")
    measure(None)
    measure(1)
