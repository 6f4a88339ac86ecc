"""Run vlakit's conformance suite over every registered component (built-ins and plugins)."""

from __future__ import annotations

import pytest

from vlakit.testing import check_component, conformance_cases

CASES = conformance_cases()


def test_there_is_something_to_check() -> None:
    kinds = {kind for kind, _ in CASES}
    assert {"action_tokenizers", "envs", "backends"} <= kinds


@pytest.mark.parametrize("kind,key", CASES, ids=[f"{k}/{n}" for k, n in CASES])
def test_component_conforms(kind: str, key: str) -> None:
    check_component(kind, key)
