"""The trackers a config asks for (W&B, the git archive), behind one guard: a tracker that
fails is switched off with a warning, and the run goes on."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from seidr.problem import Problem
from seidr.redact import Redactor
from seidr.search.tree import Program

log = logging.getLogger("seidr.tracking")
TRACKERS = ("wandb", "git")


def requested(cfg: DictConfig) -> tuple[str, ...]:
    """The trackers a config asks for."""
    tracking = cfg.get("tracking") or {}
    return tuple(name for name in TRACKERS if tracking.get(name))


class Trackers:
    def __init__(self, cfg: DictConfig, problem: Problem, output_dir: Path, programs_jsonl: Path,
                 redactor: Redactor | None = None, only: tuple[str, ...] = TRACKERS) -> None:
        """The trackers the config asks for, of those named in `only` (a finished job's rerun
        starts just the ones that did not finish)."""
        self.programs_jsonl = programs_jsonl
        # W&B and the archive get the config, programs, results and messages with secrets masked
        self.redactor = redactor or Redactor.from_sources(config=cfg)
        self.wandb = None
        self.git = None
        self.git_name = "git archive"
        tracking = cfg.get("tracking") or {}
        # what the config asks for, whether or not it started: a job is finished when all of these are
        self.requested = tuple(name for name in requested(cfg) if name in only)
        language, extension = str(cfg.language), {"python": "py", "cpp": "cpp"}.get(str(cfg.language), "txt")
        key = {"model": cfg.model.name, "selection": str(cfg.selection.get("_target_")), "seed": int(cfg.seed),
               **{k: v for k, v in OmegaConf.to_container(cfg.search, resolve=True).items()}}
        name = f"{problem.name} {language} {cfg.model.name} bf{cfg.search.branching_factor} " \
               f"mp{cfg.search.max_programs} seed{cfg.seed}"
        if "wandb" in self.requested:
            w = tracking.wandb
            group = w.group or (output_dir.parent.name if output_dir.parent.parent.name == "multiruns" else "runs")
            self.wandb = self._guard("W&B", lambda: _wandb(w, group, name, cfg, output_dir, self.redactor))
        if "git" in self.requested:
            g = tracking.git
            from seidr.tracking.gitlog import GitArchive, branch_name

            # the run folder is in the name: same-config jobs never share a branch, a resume keeps its own
            branch = branch_name(problem.dataset, problem.name, language, key, output_dir)
            # the warning that switches the archive off says which archive
            self.git_name = f"git archive {Path(str(g.path)).expanduser().resolve()}"
            self.git = self._guard(self.git_name, lambda: GitArchive(
                g.path, branch, extension, remote=g.remote,
                author_name=g.author_name, author_email=g.author_email, commit_every=int(g.commit_every),
                push_every=int(g.push_every), push_retries=int(g.push_retries), redactor=self.redactor))

    def _guard(self, what: str, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except Exception as error:  # noqa: BLE001 - tracking must never take the run down
            # the error may quote a URL or a config value: masked here too, for callers whose
            # logging seidr did not set up (the Python API)
            log.warning("%s", self.redactor.message(f"{what} is off for this run: {cause(error)}"))
            return None

    def _call(self, attribute: str, what: str, action: Callable[[Any], Any]) -> None:
        """Call a tracker; one that fails is switched off for the rest of the run."""
        tracker = getattr(self, attribute)
        if tracker is not None and self._guard(what, lambda: action(tracker) or True) is None:
            setattr(self, attribute, None)

    def add_program(self, program: Program, best: Program | None, usage: dict[str, Any]) -> None:
        self._call("wandb", "W&B", lambda run: run.add_program(program, best, usage))
        self._call("git", self.git_name, lambda archive: archive.add_program(program, self.programs_jsonl))

    def finish(self, result: dict[str, Any], programs: list[Program]) -> tuple[str, ...]:
        """End each tracker with the job's result; returns the names of those that finished."""
        url = self.wandb.url if self.wandb else None
        self._call("wandb", "W&B", lambda run: run.finish(result, programs))
        best = result.get("best_program_id")
        message = (f"{result['problem']} ({result['language']}): {'solved' if result['solved'] else 'not solved'}, "
                   f"{result['programs']} programs, best score {result['val_score']:.3f}"
                   + (f" (program {best})" if best is not None else "") + (f"\n\nW&B run: {url}" if url else ""))
        self._call("git", self.git_name, lambda archive: archive.finish(self.programs_jsonl, result, message))
        return tuple(name for name in self.requested if getattr(self, name) is not None)


def cause(error: BaseException) -> str:
    """Why `error` happened, in one line: what git said when a git command failed (the error's
    own first line only names the command and its exit code), else the error's first line."""
    said = getattr(error, "stderr", None)
    if isinstance(said, bytes):
        said = said.decode("utf-8", "replace")
    # GitPython wraps git's output as "stderr: '...'"
    lines = [re.sub(r"^stderr: '|'$", "", line.strip()) for line in (said or "").splitlines()]
    lines = [line for line in lines if line]
    if lines:
        return next((line for line in lines if line.startswith(("fatal:", "error:"))), lines[-1])
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _wandb(w: DictConfig, group: str, name: str, cfg: DictConfig, output_dir: Path, redactor: Redactor):
    from seidr.tracking.wandb_run import WandbRun

    return WandbRun(project=w.project, entity=w.entity, group=group, name=redactor.text(name),
                    config=redactor.config(cfg), mode=str(w.mode), output_dir=output_dir,
                    init_timeout_s=float(w.init_timeout_s), redactor=redactor)
