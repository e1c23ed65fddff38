"""One answer to "is this CI?" for every test, and what a missing part of the machine means there.

scripts/setup.sh installs everything the tests need (bubblewrap, g++, chromium, Slurm, the system
python3, the dev extras), and .ci/run runs as root with CI set. So under CI a missing part is a broken
setup and fails the test; elsewhere (a developer's laptop without chromium) it is a skip that says
what is missing. Tests never read the CI variable themselves: they call `unavailable` or mark
themselves with `needs`."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

# values that CI services and people use to say "not CI"
_NOT_CI = ("", "0", "false", "no", "off")


def in_ci(environ: dict[str, str] | os._Environ = os.environ) -> bool:
    """Whether the tests run under CI: CI set to anything but empty, 0, false, no or off."""
    return environ.get("CI", "").strip().lower() not in _NOT_CI


def unavailable(reason: str) -> NoReturn:
    """A part of the machine the test needs is missing: a failure under CI, a skip elsewhere."""
    if in_ci():
        pytest.fail(f"CI={os.environ['CI']}: {reason} (scripts/setup.sh provides it, so under CI this "
                    "fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


def needs(available: bool, reason: str) -> pytest.MarkDecorator:
    """Mark a test (or a parameter) that runs only where `available` holds; see `unavailable`.
    conftest.py's setup hook applies it, so the test's own code never starts without it."""
    return pytest.mark.needs(bool(available), reason=reason)


def apply_needs(item: pytest.Item) -> None:
    """Skip or fail `item` (see `unavailable`) for its first `needs` mark whose condition is false."""
    for mark in item.iter_markers("needs"):
        if not mark.args[0]:
            unavailable(mark.kwargs["reason"])
