"""Pydantic field types for component specs.

``Component("vision_encoders")`` is a field type whose value is a dict with a ``type`` key. On
validation the type is looked up in the kind's registry (importing a plugin on demand) and the
rest of the dict is validated against that component's own ``Config``. Errors keep their nested
field path (expanded by :mod:`vlakit.recipe.errors`) and unknown types name the closest key.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import GetJsonSchemaHandler, ValidationError
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from vlakit.config import ComponentConfig
from vlakit.errors import PluginError, RegistryError, closest


class _ComponentField:
    def __init__(self, kind: str, default_type: str | None = None) -> None:
        self.kind = kind
        self.default_type = default_type

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            self.validate,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda v: v.model_dump(mode="json") if isinstance(v, ComponentConfig) else v
            ),
        )

    def __get_pydantic_json_schema__(self, _core: Any, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        from vlakit.registry import registry

        reg = registry(self.kind)
        options = []
        for key in reg.keys():
            try:
                options.append(reg.config_class(key).model_json_schema())
            except (RegistryError, PluginError):
                continue
        return {"title": reg.info.title, "oneOf": options} if options else {"type": "object"}

    def validate(self, value: Any) -> ComponentConfig:
        from vlakit.registry import registry

        reg = registry(self.kind)
        if isinstance(value, ComponentConfig):
            value = value.model_dump()
        if isinstance(value, str):  # shorthand: `vision: siglip`
            value = {"type": value}
        if not isinstance(value, dict):
            raise PydanticCustomError("component_spec", "expected a mapping with a `type` key, got {got}",
                                      {"got": type(value).__name__})
        value = dict(value)
        if "type" not in value:
            if self.default_type is None:
                raise PydanticCustomError("component_type_missing",
                                          "missing `type`: one of {valid}", {"valid": ", ".join(reg.keys())})
            value["type"] = self.default_type
        key = value["type"]
        try:
            cfg_cls = reg.config_class(key)
        except PluginError as exc:
            raise PydanticCustomError("component_plugin_failed", "{msg}", {"msg": str(exc)}) from None
        except RegistryError:
            valid = reg.keys()
            match = closest(str(key), valid)
            raise PydanticCustomError(
                "component_type_unknown", "{msg}",
                {"msg": f"unknown {reg.info.title} type {key!r}. Valid types: {', '.join(valid)}."
                        + (f" Did you mean {match!r}?" if match else ""),
                 "suggestion": match, "subloc": ("type",)},
            ) from None
        try:
            return cfg_cls.model_validate(value)
        except ValidationError as exc:
            nested = [
                {"loc": tuple(e["loc"]), "msg": e["msg"], "input": e.get("input"), "type": e["type"],
                 "valid": sorted(cfg_cls.model_fields) if e["type"] == "extra_forbidden" else None}
                for e in exc.errors()
            ]
            raise PydanticCustomError(
                "component_invalid", "invalid {title} {key!r} config", {
                    "title": reg.info.title, "key": key, "nested": nested}) from None


def Component(kind: str, *, default_type: str | None = None) -> Any:
    """Field type for a component spec of ``kind`` (a registry name such as ``"vision_encoders"``)."""
    return Annotated[ComponentConfig, _ComponentField(kind, default_type)]
