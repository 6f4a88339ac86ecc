"""Throwaway components registered for recipe-system tests (so they do not depend on model sizes)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import pytest
from pydantic import Field

from vlakit.config import ComponentConfig
from vlakit.registry import registry


def _stub_class(kind: str, key: str, config: type) -> type:
    iface = registry(kind).interface()
    methods = {name: (lambda *a, **k: None) for name in getattr(iface, "__abstractmethods__", ())}
    cls = type(f"Fake_{key}", (iface,), {"Config": config, **methods, "__module__": "tests.fake"})
    cls.__abstractmethods__ = frozenset()
    return cls


class FakeVisionConfig(ComponentConfig):
    type: Literal["fake_vision"] = "fake_vision"
    variant: Literal["small", "large"] = "small"
    width: int = Field(8, ge=1)


class FakeVision2Config(ComponentConfig):
    type: Literal["fake_vision2"] = "fake_vision2"
    channels: int = 4


class FakeLanguageConfig(ComponentConfig):
    type: Literal["fake_language"] = "fake_language"
    depth: int = 2


class FakeStateConfig(ComponentConfig):
    type: Literal["fake_state"] = "fake_state"
    bins: int = 256


class FakeHeadConfig(ComponentConfig):
    type: Literal["fake_head"] = "fake_head"
    steps: int = Field(10, ge=1)


class FakeTextConfig(ComponentConfig):
    type: Literal["fake_text"] = "fake_text"


class FakeBackendConfig(ComponentConfig):
    type: Literal["fake_backend"] = "fake_backend"


class FakeEnvConfig(ComponentConfig):
    type: Literal["fake_env"] = "fake_env"


FAKES = [
    ("vision_encoders", FakeVisionConfig),
    ("vision_encoders", FakeVision2Config),
    ("language_backbones", FakeLanguageConfig),
    ("state_encoders", FakeStateConfig),
    ("action_heads", FakeHeadConfig),
    ("text_tokenizers", FakeTextConfig),
    ("backends", FakeBackendConfig),
    ("envs", FakeEnvConfig),
]


@pytest.fixture
def fake_components() -> Iterator[None]:
    for kind, cfg in FAKES:
        registry(kind).register(_stub_class(kind, cfg.type_key(), cfg))
    try:
        yield
    finally:
        for kind, cfg in FAKES:
            registry(kind).unregister(cfg.type_key())


BASE_RECIPE = """\
name: base
model:
  cameras: [overhead]
  horizon: 8
  vision: {type: fake_vision, variant: small}
  language: {type: fake_language}
  text_tokenizer: {type: fake_text}
  state: {type: fake_state}
  heads:
    flow_matching: {type: fake_head, steps: 10}
eval:
  env: {type: fake_env}
backend: {type: fake_backend}
"""
