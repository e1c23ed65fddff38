"""The run folder's records: `programs.jsonl` (one line per program, appended as soon as it is
scored) and `result.json` (the summary, written once at the end)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from seidr.atomic import write_text_atomic
from seidr.errors import SeidrError
from seidr.problem import Example
from seidr.redact import Redactor
from seidr.search.tree import Program


class RunRecorder:
    """Writes a run's programs and result into its output folder, and reads back what an
    earlier, interrupted run of the same job left there."""

    def __init__(self, output_dir: str | Path, tests: Sequence[Example] = (),
                 redactor: Redactor | None = None) -> None:
        self.tests = tuple(tests)  # the validation tests, named in each program's feedback
        self.redactor = redactor or Redactor()  # what is written has its secrets masked
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.programs_path = self.output_dir / "programs.jsonl"
        self.result_path = self.output_dir / "result.json"
        self.earlier: list[Program] = self._load_programs()

    def finished_result(self) -> dict[str, Any] | None:
        """The result of a job that already finished here, if it did. A job that stopped on an
        error (a broken sandbox, a dead server) did not finish: its rerun resumes it."""
        try:
            result = json.loads(self.result_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return None if isinstance(result, dict) and result.get("stopped") == "error" else result

    def _load_programs(self) -> list[Program]:
        """Programs an earlier run recorded. A line torn by a kill mid-write is cut off."""
        if not self.programs_path.is_file():
            return []
        data = self.programs_path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) != len(data):
            with self.programs_path.open("r+b") as out:
                out.truncate(len(complete))
        programs = []
        for line in complete.decode("utf-8").splitlines():
            try:
                programs.append(Program.from_record(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                break  # nothing after a damaged line can be trusted to follow on from it
        return programs

    def add_program(self, program: Program) -> None:
        """Append one program; flushed and synced so a crash right after loses nothing. A program
        an earlier run of this job already recorded is checked, not written again."""
        record = self.redactor.data(program.record(self.tests))
        if program.id < len(self.earlier):
            if self.earlier[program.id].code != record["code"]:  # compared as written
                raise SeidrError(
                    f"{self.programs_path} holds a different run (program {program.id} differs): rerun in a new "
                    "output folder, or with the same config and model.cache=true to resume")
            return
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self.programs_path.open("a", encoding="utf-8") as out:
            out.write(line)
            out.flush()
            os.fsync(out.fileno())

    def write_result(self, result: dict[str, Any]) -> None:
        """Write result.json atomically: readers see the old file or the new one, never half."""
        write_json_atomic(self.result_path, self.redactor.data(result))


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
