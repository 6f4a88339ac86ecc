"""vlakit.components.action_tokenizers."""
