"""A small synchronous client for :mod:`vlakit.serving.server` (and openpi-compatible servers)."""

from __future__ import annotations

from typing import Any

from vlakit.errors import VlakitError
from vlakit.serving.msgpack_numpy import packb, unpackb


class ServerError(VlakitError):
    """The server failed to run inference; the message carries its traceback."""


class PolicyClient:
    def __init__(self, uri: str = "ws://127.0.0.1:8000", *, api_key: str | None = None,
                 open_timeout: float = 10.0) -> None:
        import contextlib

        from websockets.sync.client import connect

        headers = {"Authorization": f"Api-Key {api_key}"} if api_key else None
        self._stack = contextlib.ExitStack()
        self._ws = self._stack.enter_context(connect(uri, compression=None, max_size=None, additional_headers=headers,
                                                     open_timeout=open_timeout, proxy=None))
        self.metadata: dict[str, Any] = unpackb(self._ws.recv())

    def infer(self, obs: dict[str, Any]) -> dict[str, Any]:
        self._ws.send(packb(obs))
        reply = self._ws.recv()
        if isinstance(reply, str):
            raise ServerError(f"policy server error:\n{reply}")
        return unpackb(reply)

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> PolicyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
