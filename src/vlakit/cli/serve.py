"""``vlakit serve POLICY_DIR`` -- a websocket policy server (openpi-compatible protocol)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from vlakit.cli._common import console, handle_errors


class _ServingAdapter:
    """Wraps a LoadedPolicy for the server: the observation dict may name its ``robot_type``."""

    def __init__(self, loaded: Any) -> None:
        self.loaded = loaded
        self.metadata = loaded.metadata

    def infer(self, obs: dict[str, Any]) -> dict[str, Any]:
        robot_type = obs.get("robot_type")
        return self.loaded.infer(obs, robot_type=str(robot_type) if robot_type is not None else None)


def serve(
    policy_dir: Path = typer.Argument(..., help="A policy folder written by `vlakit train` / `vlakit run`."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind (use 0.0.0.0 to accept remote robots)."),
    port: int = typer.Option(8000, min=0, max=65535, help="TCP port (0 = pick a free one)."),
) -> None:
    """Serve a trained policy over websockets.

    Clients send msgpack dicts ``{"images": {camera: uint8 [h, w, 3]}, "state": float [S], "prompt": str,
    "robot_type": str (optional)}`` and receive ``{"actions": [H, action_dim], "subtask": str|None,
    "server_timing": {...}}``. The wire format is openpi's msgpack-numpy, so openpi clients work.
    ``GET /healthz`` answers 200. A failed inference (e.g. an undecodable FAST chunk) is sent back
    as an error, never as made-up actions.
    """
    from vlakit.policy_io import load_policy
    from vlakit.serving.server import PolicyServer

    loaded = load_policy(policy_dir)
    server = PolicyServer(_ServingAdapter(loaded), host=host, port=port)
    console.print(f"serving [bold]{loaded.recipe.name}[/] from {policy_dir} on ws://{host}:{port} (Ctrl-C stops)")
    server.run_forever()


def register(app: typer.Typer) -> None:
    app.command("serve")(handle_errors(serve))
