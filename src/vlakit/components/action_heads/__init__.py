"""vlakit.components.action_heads."""
