"""The run folder's records: `programs.jsonl` (one line per program, appended as soon as it is
scored) and `result.json` (the summary, written once at the end)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from seidr.search.tree import Program


class RunRecorder:
    """Writes a run's programs and result into its output folder."""

    def __init__(self, output_dir: str | Path) -> None:
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.programs_path = self.output_dir / "programs.jsonl"
        self.result_path = self.output_dir / "result.json"

    def add_program(self, program: Program) -> None:
        """Append one program; flushed and synced so a crash right after loses nothing."""
        line = json.dumps(program.record(), ensure_ascii=False) + "\n"
        with self.programs_path.open("a", encoding="utf-8") as out:
            out.write(line)
            out.flush()
            os.fsync(out.fileno())

    def write_result(self, result: dict[str, Any]) -> None:
        """Write result.json atomically: readers see the old file or the new one, never half."""
        write_json_atomic(self.result_path, result)


def write_json_atomic(path: Path, data: Any) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2, ensure_ascii=False)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
