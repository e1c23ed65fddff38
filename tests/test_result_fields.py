"""result.json's fields are defined once (seidr.result.JobResult): the docs list them from there."""

from __future__ import annotations

import dataclasses

import pytest

from seidr.config import REPO_ROOT
from seidr.result import JobResult, fields_table


def a_result(**changes) -> JobResult:
    values = {item.name: None for item in dataclasses.fields(JobResult)}
    values.update(problem="gcd", dataset="psb2", solved=False, stopped="budget", warnings=[])
    values.update(changes)
    return JobResult(**values)


def test_the_docs_list_every_field_of_result_json_as_the_code_defines_it():
    docs = (REPO_ROOT / "docs" / "config.md").read_text()
    assert fields_table() in docs, "docs/config.md's result.json table differs from `python -m seidr.result`"


def test_every_field_says_what_it_holds():
    assert all(item.metadata.get("doc") for item in dataclasses.fields(JobResult))


def test_a_job_stopped_by_an_error_cannot_claim_a_solve():
    with pytest.raises(ValueError, match="no solve"):
        a_result(solved=True, stopped="error")
    assert a_result(solved=True, stopped="solved").as_dict()["solved"] is True


def test_an_unknown_stop_reason_is_refused():
    with pytest.raises(ValueError, match="stopped"):
        a_result(stopped="finished")


def test_result_json_keeps_the_fields_order():
    assert list(a_result().as_dict()) == [item.name for item in dataclasses.fields(JobResult)]
