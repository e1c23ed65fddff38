"""On-disk cache of LLM replies: a rerun of the same config replays them and makes no call.

One file per request, named by the hash of everything that determines the reply (backend,
endpoint, model, messages, temperature, max_tokens, n, seed). Files are written to a temporary
name and renamed, and carry a checksum of their content, so a file torn by a killed job (or
edited by hand) is detected, ignored and overwritten. A cache that cannot be written (a read-only
folder, a full disk) is a warning, once: the reply is used anyway, only a rerun pays for it again."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from seidr.atomic import write_text_atomic
from seidr.llm.base import Completion, Message, storable

log = logging.getLogger("seidr")

FORMAT = 1


def request_key(identity: str, messages: Sequence[Message], *, n: int, temperature: float, max_tokens: int,
                seed: int | None) -> str:
    """The cache key of one request."""
    request = {"format": FORMAT, "backend": identity, "messages": [[m.role, m.content] for m in messages],
               "n": n, "temperature": round(float(temperature), 6), "max_tokens": max_tokens, "seed": seed}
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


class ResponseCache:
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).expanduser()
        self.unwritable: OSError | None = None  # the first refused write, once warned about

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> list[Completion] | None:
        """The cached replies, or None when absent or damaged."""
        try:
            record = json.loads(self._path(key).read_text(encoding="utf-8"))
            body = record["completions"]
            if record.get("key") != key or record.get("checksum") != _checksum(body):
                return None
            return [Completion(**item) for item in body]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, completions: Sequence[Completion]) -> None:
        """Keep the replies; a refused write is warned about once and otherwise ignored, since the
        replies were paid for and the run can use them."""
        path = self._path(key)
        body = [asdict(storable(c)) for c in completions]  # UTF-8 holds it, so the file can be written
        data = json.dumps({"key": key, "checksum": _checksum(body), "completions": body}, ensure_ascii=False)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, data)
        except OSError as error:
            if self.unwritable is None:
                self.unwritable = error
                log.warning("cannot write the LLM response cache %s: %s; replies are used but not kept, so a "
                            "rerun pays for them again (make it writable, or set model.cache_dir)",
                            self.folder, error.strerror or error)


def _checksum(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
