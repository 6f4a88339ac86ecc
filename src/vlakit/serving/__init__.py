"""Serve a policy over websockets with openpi's msgpack-numpy protocol (clients interoperate)."""
