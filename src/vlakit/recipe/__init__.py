"""Declarative recipes: pydantic schema, YAML loading (extends, overrides) and the composition root."""
