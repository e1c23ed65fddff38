"""Config helpers shared by the entry point and the tests."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "conf"


def register_resolvers() -> None:
    """`${seidr_root:}` in configs: the repository folder, wherever the command runs from."""
    if not OmegaConf.has_resolver("seidr_root"):
        OmegaConf.register_new_resolver("seidr_root", lambda: str(REPO_ROOT))
