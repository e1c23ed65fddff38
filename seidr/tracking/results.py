"""The run folder's records: `programs.jsonl` (one line per program, appended as soon as it is
scored), `llm_usage.json` (the LLM calls every run of the job paid for) and `result.json` (the
summary, written once at the end)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

from seidr.atomic import append_durably, cannot_write, write_text_atomic
from seidr.errors import SeidrError
from seidr.problem import Example
from seidr.redact import Redactor
from seidr.search.tree import Program

log = logging.getLogger("seidr")


class RunRefused(SeidrError):
    """The run folder holds another job or another run of it: this job may write nothing there."""


class RunRecorder:
    """Writes a run's programs and result into its output folder, and reads back what an
    earlier, interrupted run of the same job left there. `repair`: a damaged programs.jsonl line
    is dropped with everything after it (kept aside, and made again) instead of refused."""

    def __init__(self, output_dir: str | Path, tests: Sequence[Example] = (),
                 redactor: Redactor | None = None, repair: bool = False,
                 on_claim: Callable[[], None] | None = None) -> None:
        self.tests = tuple(tests)  # the validation tests, named in each program's feedback
        self.redactor = redactor or Redactor()  # what is written has its secrets masked
        self.output_dir = Path(output_dir)
        self.programs_path = self.output_dir / "programs.jsonl"
        self.dropped_path = self.output_dir / "programs.jsonl.dropped"
        self.result_path = self.output_dir / "result.json"
        self.usage_path = self.output_dir / "llm_usage.json"
        # the trackers (W&B, the git archive) still to finish after result.json: a job is done when they are
        self.tracking_path = self.output_dir / "tracking_pending.json"
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise cannot_write(self.output_dir, error, self.output_dir) from None
        self.earlier: list[Program] = self._load_programs(repair)
        # the programs this run has in the folder, as written: the checked earlier ones, then appended ones
        self.recorded: list[Program] = []
        self.earlier_usage: dict[str, Any] = self._load_usage()
        self._refused: SeidrError | None = None  # a write that failed: nothing may follow it
        # the folder is claimed with this run's first new program: job.json (when the folder has
        # none yet) and whatever else the caller writes then (`on_claim`)
        self._identity: dict[str, Any] | None = None
        self._on_claim = on_claim
        self.claimed = False

    def claim(self, identity: dict[str, Any]) -> None:
        """Check the folder is this job's, or refuse when it holds another job: a rerun with another
        problem, model, seed or search would otherwise adopt the earlier job's programs and
        verdicts as its own. The folder is marked (job.json) with the job's first program, so a
        job that failed before it claims nothing."""
        path = self.output_dir / "job.json"
        mine = json.loads(json.dumps(identity, sort_keys=True, default=str))
        try:
            earlier = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            earlier = None
        except (OSError, ValueError) as error:
            raise SeidrError(f"{path} is damaged ({error}); restore it, or delete it to have this job "
                             f"claim {self.output_dir} (its recorded programs are still checked one by "
                             "one)") from None
        if earlier is None:
            if not (self.earlier or self.result_path.exists()):
                # else a folder from before job.json existed: its programs are still checked one by one
                self._identity = mine
            return
        if not isinstance(earlier, dict):
            raise SeidrError(f"{path} is damaged (not a JSON object); restore it, or delete it to have "
                             f"this job claim {self.output_dir} (its recorded programs are still checked "
                             "one by one)")
        differs = sorted(key for key in set(mine) | set(earlier) if mine.get(key) != earlier.get(key))
        if differs:
            shown = ", ".join(f"{key}: {earlier.get(key)!r} there, {mine.get(key)!r} now" for key in differs[:3])
            raise RunRefused(f"{self.output_dir} holds a different job ({shown}); rerun in a new output "
                             "folder, or with the config that made it to resume")

    def claim_folder(self) -> None:
        """Mark the folder as this job's (once): job.json, then the caller's `on_claim`."""
        if self.claimed:
            return
        if self._identity is not None:
            path = self.output_dir / "job.json"
            try:
                write_text_atomic(path, json.dumps(self._identity, indent=2, sort_keys=True) + "\n")
            except OSError as error:
                raise cannot_write(path, error, self.output_dir) from None
        self.claimed = True
        if self._on_claim is not None:
            self._on_claim()

    def finished_result(self) -> dict[str, Any] | None:
        """The result of a job that already finished here, if it did. A job that stopped on an
        error (a broken sandbox, a dead server) did not finish: its rerun resumes it."""
        try:
            result = json.loads(self.result_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(result, dict) or result.get("stopped") == "error":
            return None
        if isinstance(result.get("programs"), int) and result["programs"] > len(self.earlier):
            log.warning("%s counts %d programs but %s holds %d: the job runs again to make them again (from "
                        "the LLM cache where it has the replies)", self.result_path, result["programs"],
                        self.programs_path, len(self.earlier))
            return None
        return result

    def pending_tracking(self, requested: Sequence[str]) -> tuple[str, ...]:
        """Of the `requested` trackers, those a finished job has not finished yet (all of them
        when the record of it is damaged: finishing one twice is harmless, never finishing is not)."""
        try:
            pending = json.loads(self.tracking_path.read_text(encoding="utf-8"))["pending"]
        except FileNotFoundError:
            return ()
        except (OSError, ValueError, KeyError, TypeError):
            return tuple(requested)
        return tuple(name for name in requested if name in pending)

    def set_pending_tracking(self, names: Sequence[str]) -> None:
        """Record the trackers still to finish; none left removes the record."""
        try:
            if names:
                write_json_atomic(self.tracking_path, {"pending": list(names)})
            else:
                self.tracking_path.unlink(missing_ok=True)
        except OSError as error:
            raise cannot_write(self.tracking_path, error, self.output_dir) from None

    def _load_programs(self, repair: bool) -> list[Program]:
        """Programs an earlier run recorded. A last line torn by a kill mid-write is cut off (it is
        made again); a damaged line before it stops the job, since the programs after it cannot be
        trusted to follow on from it, unless `repair` says to drop them."""
        if not self.programs_path.is_file():
            return []
        data = self.programs_path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) != len(data):
            self._cut(len(complete))
        lines = complete.split(b"\n")[:-1]
        programs: list[Program] = []
        offset = 0
        for number, raw in enumerate(lines, start=1):
            try:
                programs.append(_parse(raw, expected_id=number - 1))
            except _Damaged as damage:
                self._damaged(number, str(damage), complete[offset:], repair, after=len(lines) - number)
                break
            offset += len(raw) + 1
        return programs

    def _damaged(self, number: int, reason: str, tail: bytes, repair: bool, after: int) -> None:
        """Refuse a damaged line, or with `repair` move it and all after it to programs.jsonl.dropped."""
        following = f" and the {after} line{'s' if after != 1 else ''} after it" if after else ""
        if not repair:
            raise SeidrError(
                f"{self.programs_path} line {number} is damaged ({reason}); restore that line, or rerun with "
                f"resume.repair=true to drop it{following} (they are kept in {self.dropped_path.name} and made again)")
        try:
            append_durably(self.dropped_path, tail)  # kept before it is cut: nothing is lost
        except OSError as error:
            raise cannot_write(self.dropped_path, error, self.output_dir) from None
        self._cut(self.programs_path.stat().st_size - len(tail))
        log.warning("programs.jsonl line %d was damaged (%s): it%s moved to %s and will be made again",
                    number, reason, following, self.dropped_path)

    def _cut(self, size: int) -> None:
        try:
            with self.programs_path.open("r+b") as out:
                out.truncate(size)
        except OSError as error:
            raise cannot_write(self.programs_path, error, self.output_dir) from None

    def _load_usage(self) -> dict[str, Any]:
        """What earlier runs of this job paid for; nothing when this is the first run."""
        try:
            usage = json.loads(self.usage_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"llm_calls": 0, "cost_usd": None}
        except (OSError, ValueError) as error:
            usage = error
        if not isinstance(usage, dict) or not isinstance(usage.get("llm_calls"), int):
            # counting from 0 would hide what the earlier runs paid for
            reason = usage if isinstance(usage, Exception) else "no call count"
            raise SeidrError(f"{self.usage_path} is damaged ({reason}); restore it, or delete it to count "
                             "only the calls made from now on")
        return usage

    def total_usage(self, calls: int, cost_usd: float | None) -> dict[str, Any]:
        """This run's paid calls and cost added to those of the job's earlier runs."""
        earlier_cost = self.earlier_usage.get("cost_usd")
        cost = None if cost_usd is None and earlier_cost is None else (cost_usd or 0.0) + (earlier_cost or 0.0)
        return {"llm_calls": int(self.earlier_usage.get("llm_calls", 0)) + calls,
                "cost_usd": None if cost is None else round(cost, 6)}

    def record_usage(self, calls: int, cost_usd: float | None) -> None:
        """Keep the job's paid calls so far (this run's and earlier runs'), after every call, so a
        run killed at any point leaves the count for its resumption."""
        try:
            write_json_atomic(self.usage_path, self.total_usage(calls, cost_usd))
        except OSError as error:
            raise cannot_write(self.usage_path, error, self.output_dir) from None

    def add_program(self, program: Program) -> None:
        """Append one program; synced so a crash right after loses nothing. A program an earlier
        run of this job already recorded is checked, not written again. After a refused write
        nothing more is appended, so no program's line can be missing between two others."""
        record = self.redactor.data(program.record(self.tests))
        if program.id < len(self.earlier):
            if self.earlier[program.id].code != record["code"]:  # compared as written
                raise RunRefused(
                    f"{self.programs_path} holds a different run (program {program.id} differs): rerun in a new "
                    "output folder, or with the same config and model.cache=true to resume")
            self.recorded.append(self.earlier[program.id])
            return
        if self._refused is not None:
            raise self._refused
        self.claim_folder()
        line = json.dumps(record, ensure_ascii=False) + "\n"
        try:
            append_durably(self.programs_path, line.encode("utf-8"))
        except OSError as error:
            self._refused = cannot_write(self.programs_path, error, self.output_dir)
            raise self._refused from None
        self.recorded.append(Program.from_record(record))

    def write_result(self, result: dict[str, Any]) -> None:
        """Write result.json atomically: readers see the old file or the new one, never half.
        Refused (nothing written) unless every figure in it comes from the programs recorded here."""
        written = self.redactor.data(result)
        if (unsound := unrecorded_claim(written, self.recorded)) is not None:
            raise SeidrError(f"not writing {self.result_path}: {unsound}; the programs are kept in "
                             f"{self.programs_path}, rerun with hydra.run.dir={self.output_dir} to score "
                             "them again")
        try:
            write_json_atomic(self.result_path, written)
        except OSError as error:
            raise cannot_write(self.result_path, error, self.output_dir) from None


def unrecorded_claim(result: dict[str, Any], recorded: Sequence[Program]) -> str | None:
    """What a result claims that the recorded programs do not bear out, or None when every figure
    (program count, best program, its scores, solved) comes from them."""
    if result.get("programs") != len(recorded):
        return f"it counts {result.get('programs')} programs where {len(recorded)} are recorded"
    best = max(recorded, key=lambda p: (p.score, -p.id)) if recorded else None  # as the search ranks them
    best_id = result.get("best_program_id")
    if best is None or best_id is None:
        if best is not None or best_id is not None or result.get("solved"):
            return f"its best program is {best_id} where the recorded best is {best.id if best else None}"
        return None
    if best_id != best.id or result.get("best_program") != best.code:
        return f"its best program {best_id} is not the recorded best, program {best.id}"
    if result.get("val_score") != best.score or result.get("val_pass_rate") != best.pass_rate:
        return f"its validation figures are not those of program {best.id}"
    if result.get("solved") and (not best.solved or result.get("stopped") == "error"):
        return "it claims a solve that the recorded programs and the job's end do not bear out"
    return None


class _Damaged(Exception):
    """A programs.jsonl line that is not a program record in its place."""


def _parse(raw: bytes, expected_id: int) -> Program:
    try:
        record = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise _Damaged("not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise _Damaged(f"not JSON: {error.msg} at column {error.colno}") from None
    if not isinstance(record, dict):
        raise _Damaged("not a JSON object")
    try:
        program = Program.from_record(record)
    except KeyError as error:
        raise _Damaged(f"no {error.args[0]!r} field") from None
    except (TypeError, ValueError) as error:
        raise _Damaged(f"not a program record: {error}") from None
    if program.id != expected_id:
        # each line is the program with the next id: a gap or a repeat breaks the replay
        raise _Damaged(f"program id {program.id} where {expected_id} was expected")
    return program


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
