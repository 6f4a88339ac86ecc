"""Registry behaviour: registration at the definition site, duplicates, helpful unknown-key errors."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pytest

from vlakit.config import ComponentConfig
from vlakit.errors import RegistryError
from vlakit.interfaces.action_tokenizer import ActionTokenizer, DecodeResult
from vlakit.registry import ACTION_TOKENIZERS, REGISTRIES, registry


class _ToyConfig(ComponentConfig):
    type: Literal["toy_tok"] = "toy_tok"


class _Toy(ActionTokenizer):
    Config = _ToyConfig
    vocab_size = 4  # type: ignore[assignment]

    def encode(self, actions: np.ndarray) -> list[list[int]]:
        return [[0]]

    def decode(self, codes, *, horizon, action_dim) -> DecodeResult:  # type: ignore[override]
        return DecodeResult(np.zeros((1, horizon, action_dim)), np.ones(1, bool), [None])

    def save(self, folder) -> None:  # type: ignore[override]
        pass

    @classmethod
    def load(cls, folder):  # type: ignore[override]
        return cls()


@pytest.fixture
def toy():
    ACTION_TOKENIZERS.register(_Toy)
    yield _Toy
    ACTION_TOKENIZERS.unregister("toy_tok")


def test_register_uses_config_type_literal(toy) -> None:
    assert ACTION_TOKENIZERS.get("toy_tok") is toy
    assert ACTION_TOKENIZERS.config_class("toy_tok") is _ToyConfig
    assert "toy_tok" in ACTION_TOKENIZERS.keys()


def test_registering_same_class_twice_is_idempotent(toy) -> None:
    assert ACTION_TOKENIZERS.register(toy) is toy


def test_duplicate_key_fails_loudly(toy) -> None:
    other = type("OtherToy", (_Toy,), {})
    with pytest.raises(RegistryError, match="duplicate action tokenizer key 'toy_tok'"):
        ACTION_TOKENIZERS.register(other)


def test_unknown_key_lists_valid_and_closest(toy) -> None:
    with pytest.raises(RegistryError) as info:
        ACTION_TOKENIZERS.get("toy_tk")
    message = str(info.value)
    assert "unknown action tokenizer type 'toy_tk'" in message
    assert "toy_tok" in message.split("Valid types:")[1]
    assert "Did you mean 'toy_tok'?" in message


def test_class_not_implementing_interface_is_rejected() -> None:
    class Cfg(ComponentConfig):
        type: Literal["not_a_tok"] = "not_a_tok"

    class NotATokenizer:
        Config = Cfg

    with pytest.raises(RegistryError, match="does not subclass"):
        ACTION_TOKENIZERS.register(NotATokenizer)

    class Partial(ActionTokenizer):  # abstract methods missing
        Config = Cfg

    with pytest.raises(RegistryError, match="does not implement"):
        ACTION_TOKENIZERS.register(Partial)
    assert "not_a_tok" not in ACTION_TOKENIZERS.keys()


def test_config_without_type_literal_cannot_register() -> None:
    class Cfg(ComponentConfig):
        pass

    cls = type("NoType", (_Toy,), {"Config": Cfg})
    with pytest.raises(TypeError, match="must declare `type"):
        ACTION_TOKENIZERS.register(cls)


def test_unknown_kind_is_helpful() -> None:
    with pytest.raises(RegistryError, match="Did you mean 'vision_encoders'"):
        registry("vision_encoder")


def test_every_kind_has_an_entry_point_group() -> None:
    groups = {r.info.group for r in REGISTRIES.values()}
    for group in ["vlakit.vision_encoders", "vlakit.language_backbones", "vlakit.action_tokenizers",
                  "vlakit.action_heads", "vlakit.state_encoders", "vlakit.backends", "vlakit.envs"]:
        assert group in groups
