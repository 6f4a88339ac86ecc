"""Websocket policy server (openpi protocol).

On connect the server sends msgpack metadata; then, per message: receive an observation dict,
call ``policy.infer(obs)``, send the result dict plus ``server_timing``. On an exception the
traceback goes back as a *text* frame and the connection closes with code 1011 (internal error),
so the client fails loudly instead of acting on garbage. ``GET /healthz`` answers 200 OK.
"""

from __future__ import annotations

import asyncio
import http
import logging
import time
import traceback
from typing import Any, Protocol

from vlakit.serving.msgpack_numpy import packb, unpackb

log = logging.getLogger(__name__)


class InferencePolicy(Protocol):
    """What the server needs: ``infer(obs) -> {"actions": ndarray [H, A], ...}`` and metadata."""

    metadata: dict[str, Any]

    def infer(self, obs: dict[str, Any]) -> dict[str, Any]: ...


class PolicyServer:
    def __init__(self, policy: InferencePolicy, *, host: str = "127.0.0.1", port: int = 8000) -> None:
        self.policy = policy
        self.host = host
        self.port = port

    async def _handler(self, websocket: Any) -> None:
        await websocket.send(packb(dict(getattr(self.policy, "metadata", {}) or {})))
        prev_total_ms: float | None = None
        async for message in websocket:
            start = time.perf_counter()
            try:
                if isinstance(message, str):
                    raise ValueError("expected a binary msgpack frame, got text")
                obs = unpackb(message)
                infer_start = time.perf_counter()
                result = dict(self.policy.infer(obs))
                infer_ms = (time.perf_counter() - infer_start) * 1000
                timing = {"infer_ms": infer_ms}
                if prev_total_ms is not None:
                    timing["prev_total_ms"] = prev_total_ms
                result["server_timing"] = timing
                await websocket.send(packb(result))
            except Exception:  # report to the client, then close: never send a made-up action
                await websocket.send(traceback.format_exc())
                await websocket.close(code=1011, reason="internal error")
                return
            prev_total_ms = (time.perf_counter() - start) * 1000

    @staticmethod
    def _health(connection: Any, request: Any) -> Any:
        if request.path == "/healthz":
            return connection.respond(http.HTTPStatus.OK, "OK\n")
        return None

    async def serve(self, *, ready: asyncio.Event | None = None, stop: asyncio.Event | None = None) -> None:
        from websockets.asyncio.server import serve

        async with serve(self._handler, self.host, self.port, compression=None, max_size=None,
                         process_request=self._health) as server:
            if self.port == 0:
                self.port = next(iter(server.sockets)).getsockname()[1]
            log.info("serving on ws://%s:%d", self.host, self.port)
            if ready is not None:
                ready.set()
            if stop is None:
                await asyncio.get_running_loop().create_future()  # forever
            else:
                await stop.wait()

    def run_forever(self) -> None:
        asyncio.run(self.serve())
