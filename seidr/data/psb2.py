"""PSB2 read from a folder in the `psb2` package's cache layout:
`<root>/datasets/<problem>/<problem>-{edge,random}.json` (JSON lines), plus `descriptions.json`."""

from __future__ import annotations

import random
from pathlib import Path

from seidr.data.lines import json_file, json_line, numbered_lines
from seidr.data.psb2_format import format_values, split_row
from seidr.errors import SeidrError
from seidr.problem import Example, Problem

# The extracted PSB2 table runs the indices-of-substring text on after gcd's own sentence.
_DESCRIPTION_TAIL_MARKERS = {"gcd": " Indices of Substring"}


class PSB2Dataset:
    """The 25 PSB2 problems. Validation = edge cases first, then seeded random cases, up to
    `valid_examples`; test = up to `test_examples` other random cases."""

    def __init__(self, root: str | Path, name: str = "psb2") -> None:
        self.root = Path(root).expanduser()
        self.name = name

    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    def problem_names(self) -> list[str]:
        if not self.datasets_dir.is_dir():
            raise SeidrError(
                f"PSB2 data not found: looked for {self.datasets_dir}/<problem>/<problem>-edge.json. "
                "Set DATA_PATH to a folder holding psb2/datasets/ (the psb2 package's cache layout), "
                "or dataset.root=<folder>."
            )
        return sorted(p.name for p in self.datasets_dir.iterdir() if (p / f"{p.name}-edge.json").is_file())

    def load(self, problem: str, *, seed: int, valid_examples: int = 50, test_examples: int = 2000,
             prompt_examples: int = 5) -> Problem:
        names = self.problem_names()
        if problem not in names:
            raise SeidrError(f"unknown PSB2 problem {problem!r}; valid names: {', '.join(names)}")
        folder = self.datasets_dir / problem
        edge = _read_examples(folder / f"{problem}-edge.json")
        randoms = _read_examples(folder / f"{problem}-random.json")
        # The seed fixes the split, so a rerun with the same seed scores on the same tests.
        random.Random(seed).shuffle(randoms)
        valid = (edge + randoms)[:valid_examples]
        used_random = max(0, len(valid) - len(edge))
        test = randoms[used_random:used_random + test_examples]
        warnings: list[str] = []
        if not randoms:
            warnings.append(f"{folder / f'{problem}-random.json'} holds no cases: validation has the edge "
                            "cases only and there is no test split")
        if len(valid) < valid_examples:
            warnings.append(f"search.valid_examples={valid_examples} but PSB2 {problem} has only {len(valid)} "
                            f"cases: validating on {len(valid)}, none left for the test split")
        elif 0 < len(test) < test_examples / 2:
            # a small shortfall is normal (validation takes some random cases); a large one weakens the test score
            warnings.append(f"search.test_examples={test_examples} but only {len(test)} random cases of PSB2 "
                            f"{problem} are left after validation: the test pass rate rests on {len(test)}")
        return Problem(
            name=problem,
            dataset=self.name,
            description=self._description(problem),
            mode="stdio",
            valid=tuple(valid),
            test=tuple(test),
            prompt_examples=tuple(valid[:prompt_examples]),
            split="edge+random/random",
            warnings=tuple(warnings),
        )

    def _description(self, problem: str) -> str:
        path = self.root / "descriptions.json"
        if not path.is_file():
            raise SeidrError(f"PSB2 descriptions not found at {path}; it must sit beside datasets/")
        descriptions = json_file(path)
        if not isinstance(descriptions, dict):
            raise SeidrError(f"{path} must hold a JSON object of problem name to description")
        text = descriptions.get(problem)
        if not isinstance(text, str) or not text:
            raise SeidrError(f"{path} has no description for {problem!r}")
        marker = _DESCRIPTION_TAIL_MARKERS.get(problem)
        if marker and marker in text:
            text = text[: text.index(marker)]
        return text.strip()


def _read_examples(path: Path) -> list[Example]:
    if not path.is_file():
        raise SeidrError(f"PSB2 file missing: {path}")
    examples = []
    for number, raw in numbered_lines(path.read_bytes()):
        if not raw.strip():
            continue
        try:
            inputs, outputs = split_row(json_line(raw))
        except ValueError as error:
            raise SeidrError(f"{path} line {number}: {error}") from None
        examples.append(Example(input=format_values(inputs), output=format_values(outputs)))
    return examples
