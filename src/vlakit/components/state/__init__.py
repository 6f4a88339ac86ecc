"""vlakit.components.state."""
