"""Shared fixtures: where the test data lives, and configs composed the way main.py composes them."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pytest
from hydra import compose, initialize_config_dir

from seidr.config import CONFIG_DIR, REPO_ROOT, register_resolvers
from tests.ci import apply_needs


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked `needs(...)` (tests/ci.py) skips without its part, or fails under CI."""
    apply_needs(item)


def find_data_dir() -> Path | None:
    """DATA_PATH if set, else the data/ folder that ships with the repository."""
    candidates = [os.environ.get("DATA_PATH"), REPO_ROOT / "data"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "psb2" / "datasets").is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    found = find_data_dir()
    if found is None:
        pytest.fail("no test data: set DATA_PATH to a folder with psb2/ and humaneval/ (see README)")
    return found


@pytest.fixture
def compose_cfg(data_dir, tmp_path):
    """Compose the app's config with overrides, data from the test data folder, outputs in tmp."""
    register_resolvers()

    def _compose(*overrides: str):
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return compose(config_name="config", overrides=[
                f"paths.data_dir={data_dir}", f"paths.output_root={tmp_path / 'outputs'}", *overrides])

    return _compose


@pytest.fixture
def place() -> Iterator[Path]:
    """A scratch folder every user can walk into (pytest's tmp_path is closed to others)."""
    folder = Path(tempfile.mkdtemp(prefix="seidr-layout-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def home_place() -> Iterator[Path]:
    """A scratch folder under a home: /home when we may write there (it is hidden from programs
    at the namespace level, like /root), else our own home."""
    parent = Path("/home") if os.access("/home", os.W_OK) else Path.home()
    folder = Path(tempfile.mkdtemp(prefix="seidr-layout-", dir=parent))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
