"""The embedded model: weight assembly (fast) and real generation (slow: runs llama.cpp)."""

import asyncio
import hashlib
import subprocess
import sys

import pytest

from seidr.errors import SeidrError
from seidr.llm.base import Message
from seidr.llm.weights import GGUF_SIZE, assemble, part_files


def test_assembly_concatenates_parts_in_order_and_checks_the_hash(tmp_path):
    parts = []
    for index, content in enumerate([b"abc", b"", b"defg"]):
        parts.append(tmp_path / f"part{index}.bin")
        parts[-1].write_bytes(content)
    target = tmp_path / "out" / "model.gguf"
    assemble(parts, target, 7, hashlib.sha256(b"abcdefg").hexdigest())
    assert target.read_bytes() == b"abcdefg"


def test_assembly_refuses_a_mismatch_and_leaves_nothing(tmp_path):
    part = tmp_path / "part.bin"
    part.write_bytes(b"tampered")
    target = tmp_path / "model.gguf"
    with pytest.raises(SeidrError, match="sha256"):
        assemble([part], target, 8, hashlib.sha256(b"original").hexdigest())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part.bin"]


def test_the_installed_chunks_add_up_to_the_gguf_size():
    files = part_files()
    assert len(files) == 6 and [f.name for f in files] == [f"part0{i}.bin" for i in range(1, 7)]
    assert sum(f.stat().st_size for f in files) == GGUF_SIZE


@pytest.mark.slow
def test_embedded_model_writes_a_program(tmp_path):
    from seidr.llm.local import LocalBackend
    from seidr.prompts.extract import extract_code

    backend = LocalBackend("qwen", cache_dir=str(tmp_path / "models"), n_ctx=2048)
    messages = [Message("user", "Write a Python program that reads an integer from stdin and prints its square. "
                                "Answer with one ```python block.")]
    replies = asyncio.run(backend.generate(messages, n=2, temperature=0.0, max_tokens=200, seed=1))
    assert len(replies) == 2 and all(r.completion_tokens > 0 for r in replies)
    code = extract_code(replies[0].text)
    # what the program does, not how it spells it: builds differ in whether it calls input() or reads sys.stdin
    ran = subprocess.run([sys.executable, "-c", code], input="7\n", capture_output=True, text=True, timeout=30,
                         cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    # the last thing printed is the square (some replies print an input prompt first)
    assert ran.stdout.split()[-1:] == ["49"], (code, ran.stdout, ran.stderr)
    asyncio.run(backend.aclose())


@pytest.mark.slow
def test_the_default_job_runs_end_to_end_with_the_embedded_model(data_dir, tmp_path):
    """The README's main command, on a small budget: the embedded model, no server, no network."""
    from tests.test_cli import read_run, run_main

    proc = run_main("problem=fizz-buzz", "search.max_programs=2", data_dir=data_dir, output_root=tmp_path,
                    timeout=600)
    assert proc.returncode == 0, proc.stderr
    result, programs = read_run(tmp_path)
    assert result["model"] == "qwen2.5-coder-0.5b-instruct" and 1 <= result["programs"] == len(programs) <= 2
    assert result["completion_tokens"] > 0 and result["cost_usd"] == 0.0
    assert all(p["code"].strip() for p in programs)
