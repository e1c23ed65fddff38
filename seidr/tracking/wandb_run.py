"""One Weights & Biases run per job: per-program metrics (step = program id), the result in the
summary, and a table of every program at the end. Offline by default (files under the run
folder; `wandb sync` uploads them later). Any W&B failure is a warning, never a lost run."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from seidr.redact import Redactor
from seidr.search.tree import Program

log = logging.getLogger("seidr.tracking")


class WandbRun:
    def __init__(self, *, project: str, entity: str | None, group: str, name: str, config: dict[str, Any],
                 mode: str, output_dir: Path, init_timeout_s: float = 30,
                 redactor: Redactor | None = None) -> None:
        """`config` is recorded as given: the caller masks its secrets (Redactor.config)."""
        import wandb  # imported here: W&B is optional and slow to import

        self._wandb = wandb
        self.redactor = redactor or Redactor()
        # the run id follows the output folder, so a resumed job continues its W&B run
        run_id = hashlib.sha256(str(output_dir.resolve()).encode()).hexdigest()[:16]
        self.run = wandb.init(project=project, entity=entity, group=group, name=name, config=config, mode=mode,
                              dir=str(output_dir), id=run_id, resume="allow",
                              settings=wandb.Settings(init_timeout=init_timeout_s, silent=True,
                                                      **_private_settings(wandb)))
        self.url: str | None = None if mode != "online" else getattr(self.run, "url", None)

    def add_program(self, program: Program, best: Program | None, usage: dict[str, Any]) -> None:
        metrics = {"score": program.score, "pass_rate": program.pass_rate,
                   "best_score": best.score if best else 0.0, "best_pass_rate": best.pass_rate if best else 0.0,
                   "llm_calls": usage["llm_calls"], "prompt_tokens": usage["prompt_tokens"],
                   "completion_tokens": usage["completion_tokens"]}
        self.run.log(metrics, step=program.id)

    def finish(self, result: dict[str, Any], programs: list[Program]) -> None:
        table = self._wandb.Table(columns=["id", "parent", "kind", "generation", "score", "pass_rate", "code"],
                                  data=[[p.id, p.parent_id, p.kind, p.generation, p.score, p.pass_rate,
                                         self.redactor.text(p.code)] for p in programs])
        self.run.log({"programs": table})
        self.run.summary.update(self.redactor.data({key: result[key] for key in (
            "solved", "val_score", "val_pass_rate", "test_pass_rate", "programs", "llm_calls", "prompt_tokens",
            "completion_tokens", "cost_usd", "wall_s") if key in result}))
        self.run.finish()


def _private_settings(wandb: Any) -> dict[str, Any]:
    """What W&B would otherwise record on its own and seidr cannot mask: the command line (with any
    `model.api_key=...` on it) in its system metadata, the console's output, the git remote of the
    working folder (which may carry a token) and the code. Only the settings this W&B version knows
    are passed: an unknown one would fail the run's W&B."""
    wanted = {"x_disable_meta": True, "_disable_meta": True, "console": "off", "disable_git": True,
              "save_code": False, "disable_code": True}
    known = getattr(wandb.Settings, "model_fields", None) or {  # pydantic since 0.19; annotations before
        name for cls in wandb.Settings.__mro__ for name in getattr(cls, "__annotations__", {})}
    return {key: value for key, value in wanted.items() if key in known}
