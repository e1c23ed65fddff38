"""The command line checked against seidr's own config before Hydra composes it: a key no group
of seidr has (`search.max_program=5`, which Hydra would suggest adding with `+`, and which then
runs with the default `max_programs`) or a group option that does not exist (`model=opnai`) is
refused in one line naming the closest valid spelling.

Only what seidr ships is known here: a command line that brings configs of its own (--config-dir,
--config-path, --config-name or hydra.searchpath) is left to Hydra."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from omegaconf import OmegaConf

# groups whose keys are names a user adds: the price table is keyed by model name
FREE_FORM_GROUPS = {"prices"}
# groups that live beside conf/ (the repository root is on Hydra's search path)
ROOT_GROUPS = ("experiments",)


@dataclass
class KnownConfig:
    """seidr's config as its files declare it."""

    groups: dict[str, list[str]] = field(default_factory=dict)  # group -> its options
    packages: dict[str, str] = field(default_factory=dict)  # where a group's keys live -> the group
    keys: dict[str, set[str]] = field(default_factory=dict)  # group -> every key any option has
    top_level: set[str] = field(default_factory=set)  # keys of config.yaml itself

    @classmethod
    def read(cls, config_dir: Path, root_dir: Path) -> KnownConfig:
        known = cls()
        folders = {path.name: path for path in config_dir.iterdir() if path.is_dir() and path.name != "hydra"}
        folders.update({name: root_dir / name for name in ROOT_GROUPS if (root_dir / name).is_dir()})
        for group, folder in folders.items():
            files = sorted(folder.glob("*.yaml"))
            known.groups[group] = [path.stem for path in files]
            known.keys[group] = {key for path in files for key in _keys(_load(path))}
            known.packages[group] = group
        main = _load(config_dir / "config.yaml")
        for entry in main.get("defaults", []):
            if isinstance(entry, dict):
                for target in entry:
                    group, _, package = str(target).partition("@")
                    if package and group in known.groups:
                        known.packages[package] = group
        known.top_level = {str(key) for key in main if key not in ("defaults", "hydra")}
        return known


def check_overrides(argv: list[str], config_dir: Path, root_dir: Path) -> str | None:
    """Why the command line names something seidr's config does not have, in one line, or None
    (also when Hydra will refuse the line itself, or when it brings configs seidr cannot see)."""
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        args = get_args_parser().parse_args(argv)
        overrides = OverridesParser.create().parse_overrides(args.overrides)
    except (Exception, SystemExit):  # a usage error: Hydra says what is wrong with it
        return None
    if args.config_dir or args.config_path or args.config_name:
        return None
    if any(o.key_or_group.startswith("hydra.searchpath") for o in overrides):
        return None
    known = KnownConfig.read(config_dir, root_dir)
    for override in overrides:
        if override.is_delete() or override.key_or_group.split(".")[0].split("/")[0] == "hydra":
            continue
        refusal = _check(override, known)
        if refusal is not None:
            return refusal
    return None


def _check(override: Any, known: KnownConfig) -> str | None:
    name = override.key_or_group
    if name in known.groups:
        return _check_options(override, name, known.groups[name])
    head, _, rest = name.partition(".")
    if not rest:
        if name in known.top_level or name in known.packages:
            return None
        if override.is_add() or override.is_force_add():
            return None  # a key of the user's own beside seidr's (+note=...)
        return _unknown(name, sorted(known.top_level | set(known.packages)),
                        "is not a key of seidr's config")
    group = known.packages.get(head)
    if group is None:
        if head in known.top_level:
            return None  # a key inside a top-level value (resume.repair): Hydra checks it
        if override.is_add() or override.is_force_add():
            return None  # a key of the user's own beside seidr's (+notes.run=...): nothing of seidr's reads it
        return _unknown(name, sorted(known.top_level | set(known.packages)), "is not a key of seidr's config",
                        prefix="", part=head)
    if group in FREE_FORM_GROUPS or rest in known.keys[group]:
        return None
    return _unknown(name, sorted(known.keys[group]), f"is not a key of {head}", prefix=f"{head}.", part=rest)


def _check_options(override: Any, group: str, options: list[str]) -> str | None:
    try:
        values = (list(override.sweep_string_iterator()) if override.is_sweep_override()
                  else [override.get_value_element_as_str()])
    except Exception:  # a sweep kind seidr does not expand here (glob, range): Hydra checks it
        return None
    for value in values:
        if value in options or value in ("null", ""):  # no option: Hydra says what it makes of that
            continue
        close = difflib.get_close_matches(value, options, n=1)
        hint = f"did you mean {group}={close[0]}? " if close else ""
        return f"{group}={value} is not an option of {group}; {hint}(the options: {', '.join(options)})"
    return None


def _unknown(name: str, valid: Iterable[str], what: str, prefix: str = "", part: str | None = None) -> str:
    close = difflib.get_close_matches(part if part is not None else name, list(valid), n=1)
    hint = f"; did you mean {prefix}{close[0]}?" if close else ""
    return f"{name} {what}{hint}"


def _load(path: Path) -> dict[str, Any]:
    loaded = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    return loaded if isinstance(loaded, dict) else {}


def _keys(tree: dict[str, Any], prefix: str = "") -> Iterable[str]:
    """Every key of a config file, dotted, the intermediate ones too (execution.limits as well as
    execution.limits.memory_mb); not its defaults list."""
    for key, value in tree.items():
        if not prefix and key == "defaults":
            continue
        dotted = f"{prefix}{key}"
        yield dotted
        if isinstance(value, dict):
            yield from _keys(value, dotted + ".")
