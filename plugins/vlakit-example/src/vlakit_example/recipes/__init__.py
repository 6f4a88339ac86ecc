"""Recipe folder of the example plugin (the YAML files next to this module)."""
