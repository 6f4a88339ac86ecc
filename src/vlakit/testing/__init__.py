"""Conformance suites that check any registered component against its kind's interface.

Plugin authors run them on their own components::

    import pytest
    from vlakit.testing import check_component, conformance_cases

    @pytest.mark.parametrize("kind,key", conformance_cases())
    def test_conformance(kind, key):
        check_component(kind, key)

A component may provide ``@classmethod test_config(cls) -> Config`` returning a small config for
these checks (e.g. a tiny model variant); otherwise ``cls.Config()`` with defaults is used.
"""

from vlakit.testing.conformance import (
    ConformanceError,
    check_component,
    conformance_cases,
    example_config,
)

__all__ = ["ConformanceError", "check_component", "conformance_cases", "example_config"]
