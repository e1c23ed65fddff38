"""Config helpers shared by the entry point and the tests."""

from __future__ import annotations

import os
from pathlib import Path

from hydra.utils import get_class
from omegaconf import OmegaConf

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "conf"


def register_resolvers() -> None:
    """`${seidr_root:}` in configs: the repository folder, wherever the command runs from;
    `${folder_name:${problem}}`: a problem name as a relative folder (see `folder_name`)."""
    if not OmegaConf.has_resolver("seidr_root"):
        OmegaConf.register_new_resolver("seidr_root", lambda: str(REPO_ROOT))
    if not OmegaConf.has_resolver("seidr_pid"):
        OmegaConf.register_new_resolver("seidr_pid", lambda: str(os.getpid()))
    if not OmegaConf.has_resolver("folder_name"):
        OmegaConf.register_new_resolver("folder_name", folder_name)
    if not OmegaConf.has_resolver("problem_folder"):
        OmegaConf.register_new_resolver("problem_folder", problem_folder)


def folder_name(name: object) -> str:
    """A name as a folder path that stays below the folder it is joined to: `HumanEval/0` stays
    nested, while `..`, `.`, empty parts and a leading `/` are dropped (`a/../../b` -> `a/b`)."""
    parts = [part for part in str(name).replace("\\", "/").split("/") if part not in ("", ".", "..")]
    return "/".join(parts) or "_"


def problem_folder(dataset_target: object, problem: object, language: object) -> str:
    """`folder_name` of the problem's canonical name, as its dataset names it (a dataset class
    with a `canonical_name(problem, language)`: HumanEval's `Python/0` is `HumanEval/0`)."""
    name = str(problem)
    if dataset_target:
        try:
            dataset = get_class(str(dataset_target))
        except Exception:  # noqa: BLE001 - a bad target is reported when the job builds the dataset
            dataset = None
        canonical = getattr(dataset, "canonical_name", None)
        if callable(canonical):
            name = canonical(name, str(language))
    return folder_name(name)
