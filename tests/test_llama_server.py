"""The OpenAI backend against llama.cpp's own OpenAI-compatible server running the embedded model."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from seidr.llm.base import Message
from seidr.llm.openai_compat import OpenAIBackend
from seidr.llm.weights import default_gguf
from tests.ci import unavailable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_openai_backend_against_llama_cpp_server():
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError:
        unavailable("llama-cpp-python[server] is part of the dev extras")
    model = default_gguf(os.path.join(os.path.expanduser(os.environ.get("SEIDR_CACHE_DIR", "~/.cache/seidr")), "models"))
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", "qwen-local",
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base_url}/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        else:
            pytest.fail("llama.cpp server did not start in 60 s")
        backend = OpenAIBackend("qwen-local", base_url=base_url, api_key="none")
        messages = [Message("user", "Write a Python program that prints the sum of two integers read from stdin, "
                                    "one per line. One ```python block.")]

        async def ask():
            try:
                return await backend.generate(messages, n=2, temperature=0.7, max_tokens=160, seed=3)
            finally:
                await backend.aclose()

        completions = asyncio.run(ask())
    finally:
        server.terminate()
        server.wait(timeout=30)
    # llama.cpp's server returns one choice per request whatever n says: the backend asked again
    assert len(completions) == 2 and all("print" in c.text for c in completions)
    assert completions[0].prompt_tokens > 0 and all(c.completion_tokens > 0 for c in completions)
