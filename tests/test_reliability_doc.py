"""docs/reliability.md is the table of every bad input and fault the tests try."""

from __future__ import annotations

import pytest
from conftest import RELIABILITY_DOC


def test_reliability_doc_lists_every_marked_case(reliability_table: tuple[str, bool]):
    table, complete = reliability_table
    if not complete:
        pytest.skip("only part of the suite was collected; the table needs all of it")
    assert RELIABILITY_DOC.exists(), "run `python -m pytest --write-reliability`"
    assert RELIABILITY_DOC.read_text() == table, (
        "docs/reliability.md is out of date: run `python -m pytest --write-reliability`"
    )
