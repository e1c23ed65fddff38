"""llama.cpp's own log goes through Python's logging: real warnings and errors reach the console,
the loader's notes and its harmless notice about Qwen's vocabulary stay in the debug log."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from seidr.llm.llama_engine import _route_llama_log


def test_llama_log_levels(caplog):
    caplog.set_level(logging.DEBUG, logger="seidr.llm.llama_cpp")
    _route_llama_log(3, b"load: control-looking token: 128247 '</s>' was not control-type; this is probably a bug "
                        b"in the model. its type will be overridden\n", None)
    _route_llama_log(2, b"llama_model_loader: loaded meta data\n", None)
    _route_llama_log(4, b"llama_decode: failed to decode, ret = -1\n", None)
    _route_llama_log(3, b"n_ctx_per_seq < n_ctx_train\n", None)
    _route_llama_log(2, b"\n", None)
    assert [(r.levelno, r.getMessage()[:20]) for r in caplog.records] == [
        (logging.DEBUG, "load: control-lookin"), (logging.DEBUG, "llama_model_loader: "),
        (logging.ERROR, "llama_decode: failed"), (logging.WARNING, "n_ctx_per_seq < n_ct")]


@pytest.mark.slow
def test_loading_the_embedded_model_prints_no_loader_noise(tmp_path):
    """A real load of the embedded model writes nothing of llama.cpp's to the console."""
    script = (
        "from seidr.llm.weights import default_gguf\n"
        "from seidr.llm.llama_engine import BatchedEngine\n"
        "import os\n"
        "path = default_gguf(os.path.expanduser('~/.cache/seidr/models'))\n"
        "BatchedEngine(str(path), n_ctx=512, parallel=1, n_threads=1)\n"
        "print('loaded')\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "loaded" in proc.stdout
    assert "probably a bug in the model" not in proc.stderr and "llama_model_loader" not in proc.stderr
