"""Recipe loading: extends, overrides, and every bad-input case named in the foundation issue."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.recipes.conftest import BASE_RECIPE
from vlakit.recipe.errors import RecipeError
from vlakit.recipe.load import deep_merge, load_recipe, recipe_to_yaml

pytestmark = pytest.mark.usefixtures("fake_components")


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def test_valid_recipe_builds_typed_component_configs(tmp_path: Path) -> None:
    r = load_recipe(write(tmp_path, "base.yaml", BASE_RECIPE))
    assert type(r.model.vision).__name__ == "FakeVisionConfig"
    assert r.model.vision.variant == "small"
    assert r.model.heads["flow_matching"].steps == 10
    from pydantic import ValidationError

    with pytest.raises(ValidationError):  # frozen
        r.model.vision.width = 3  # type: ignore[misc]


def test_extends_deep_merges_and_child_wins(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", BASE_RECIPE)
    child = write(tmp_path, "child.yaml", "extends: base.yaml\nname: child\nmodel:\n  vision: {width: 32}\n")
    r = load_recipe(child)
    assert r.name == "child"
    assert r.model.vision.width == 32 and r.model.vision.variant == "small"  # merged, not replaced
    assert r.model.horizon == 8  # inherited


def test_extends_with_new_type_replaces_component(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", BASE_RECIPE)
    child = write(tmp_path, "child.yaml", "extends: base.yaml\nmodel:\n  vision: {type: fake_vision2}\n")
    r = load_recipe(child)
    assert type(r.model.vision).__name__ == "FakeVision2Config"  # `variant` from the parent is dropped


def test_deep_merge_replaces_lists() -> None:
    assert deep_merge({"a": [1, 2], "b": {"c": 1}}, {"a": [3], "b": {"d": 2}}) == {"a": [3], "b": {"c": 1, "d": 2}}


def test_overrides_are_typed_by_the_schema(tmp_path: Path) -> None:
    path = write(tmp_path, "base.yaml", BASE_RECIPE)
    r = load_recipe(path, ["model.heads.flow_matching.steps=5", "name=123", "model.vision.width=16"])
    assert r.model.heads["flow_matching"].steps == 5
    assert r.name == "123"  # a string field keeps the text
    assert r.model.vision.width == 16
    # a field that only exists as a default (not in the YAML) can be overridden too
    assert load_recipe(path, ["model.max_token_len=64"]).model.max_token_len == 64


def test_override_swapping_component_type(tmp_path: Path) -> None:
    r = load_recipe(write(tmp_path, "base.yaml", BASE_RECIPE), ["model.vision.type=fake_vision2"])
    assert type(r.model.vision).__name__ == "FakeVision2Config"


def test_resolved_yaml_round_trips(tmp_path: Path) -> None:
    r = load_recipe(write(tmp_path, "base.yaml", BASE_RECIPE))
    again = load_recipe(write(tmp_path, "resolved.yaml", recipe_to_yaml(r)))
    assert again == r


# -- bad input -----------------------------------------------------------------------------------
def errors_of(path: Path, overrides: list[str] | None = None) -> str:
    with pytest.raises(RecipeError) as info:
        load_recipe(path, overrides or [])
    return str(info.value)


def test_unknown_component_type_names_valid_keys_and_closest(tmp_path: Path) -> None:
    text = errors_of(write(tmp_path, "r.yaml", BASE_RECIPE.replace("type: fake_vision,", "type: fake_visoin,")))
    assert "model.vision.type" in text and "'fake_visoin'" in text
    assert "fake_vision2" in text  # the list of valid keys
    assert "Did you mean 'fake_vision'" in text
    assert "r.yaml:5" in text  # file and line of the offending key


def test_unknown_field_in_component_names_path_and_closest(tmp_path: Path) -> None:
    text = errors_of(write(tmp_path, "r.yaml", BASE_RECIPE.replace("steps: 10", "stpes: 10")))
    assert "model.heads.flow_matching.stpes" in text
    assert "Did you mean 'steps'" in text


def test_unknown_top_level_field(tmp_path: Path) -> None:
    text = errors_of(write(tmp_path, "r.yaml", BASE_RECIPE + "traing: {}\n"))
    assert "traing" in text and "Did you mean 'train'" in text


def test_wrong_type_names_value(tmp_path: Path) -> None:
    text = errors_of(write(tmp_path, "r.yaml", BASE_RECIPE.replace("horizon: 8", "horizon: eight")))
    assert "model.horizon" in text and "'eight'" in text


def test_bad_literal_suggests_closest(tmp_path: Path) -> None:
    text = errors_of(write(tmp_path, "r.yaml", BASE_RECIPE.replace("variant: small", "variant: smal")))
    assert "model.vision.variant" in text and "Did you mean 'small'" in text


def test_missing_required_field(tmp_path: Path) -> None:
    text = errors_of(write(tmp_path, "r.yaml", BASE_RECIPE.replace("  state: {type: fake_state}\n", "")))
    assert "model.state" in text and "missing" in text


def test_every_problem_is_reported(tmp_path: Path) -> None:
    bad = BASE_RECIPE.replace("horizon: 8", "horizon: -1").replace("steps: 10", "steps: 0")
    with pytest.raises(RecipeError) as info:
        load_recipe(write(tmp_path, "r.yaml", bad))
    paths = {i.path for i in info.value.issues}
    assert {"model.horizon", "model.heads.flow_matching.steps"} <= paths


def test_extends_cycle_is_detected(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "extends: b.yaml\nname: a\n")
    b = write(tmp_path, "b.yaml", "extends: a.yaml\nname: b\n")
    text = errors_of(b)
    assert "cycle" in text and "a.yaml" in text and "b.yaml" in text


def test_extends_missing_file(tmp_path: Path) -> None:
    text = errors_of(write(tmp_path, "r.yaml", "extends: nope.yaml\nname: r\n"))
    assert "extends" in text and "nope.yaml" in text


def test_malformed_yaml_reports_line(tmp_path: Path) -> None:
    text = errors_of(write(tmp_path, "r.yaml", "name: x\nmodel:\n  vision: {type: fake_vision\n  horizon: 3\n"))
    assert "malformed YAML" in text and "r.yaml:" in text


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    text = errors_of(write(tmp_path, "r.yaml", BASE_RECIPE + "name: again\n"))
    assert "duplicate key 'name'" in text


def test_override_of_nonexistent_path(tmp_path: Path) -> None:
    text = errors_of(write(tmp_path, "r.yaml", BASE_RECIPE), ["model.heads.flow_matching.stepz=3"])
    assert "stepz" in text and "Did you mean 'steps'" in text and "--set" in text


def test_override_with_bad_value_names_the_override(tmp_path: Path) -> None:
    text = errors_of(write(tmp_path, "r.yaml", BASE_RECIPE), ["model.horizon=abc"])
    assert "model.horizon" in text and "--set model.horizon=abc" in text


def test_unknown_recipe_name_suggests(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="neither an existing file nor a known recipe"):
        load_recipe("definitely_not_a_recipe_xyz")


def test_override_after_type_swap_sees_the_new_configs_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "base.yaml", BASE_RECIPE)
    r = load_recipe(path, ["model.vision.type=fake_vision2", "model.vision.channels=9"])
    assert type(r.model.vision).__name__ == "FakeVision2Config" and r.model.vision.channels == 9
