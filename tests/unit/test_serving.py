"""Websocket serving: msgpack-numpy wire format, metadata, errors as text frames, health check."""

from __future__ import annotations

import asyncio
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from vlakit.serving.client import PolicyClient, ServerError
from vlakit.serving.msgpack_numpy import packb, unpackb
from vlakit.serving.server import PolicyServer


def test_msgpack_numpy_round_trip_and_wire_format() -> None:
    obs = {"state": np.arange(6, dtype=np.float32).reshape(2, 3), "k": np.int64(3), "prompt": "pick"}
    back = unpackb(packb(obs))
    assert back["state"].dtype == np.float32 and np.array_equal(back["state"], obs["state"])
    assert back["k"] == 3 and isinstance(back["k"], np.int64) and back["prompt"] == "pick"
    import msgpack

    raw = msgpack.unpackb(packb({"a": np.zeros(2, np.uint8)}))
    assert raw["a"][b"__ndarray__"] is True and raw["a"][b"dtype"] == "|u1" and raw["a"][b"shape"] == [2]


def test_object_arrays_are_rejected() -> None:
    with pytest.raises(ValueError, match="unsupported dtype"):
        packb({"x": np.array([object()], dtype=object)})


class EchoPolicy:
    metadata = {"horizon": 4}

    def infer(self, obs: dict[str, Any]) -> dict[str, Any]:
        if obs.get("explode"):
            raise RuntimeError("boom in policy")
        return {"actions": np.tile(obs["state"][None], (4, 1))}


@pytest.fixture
def server() -> Iterator[PolicyServer]:
    srv = PolicyServer(EchoPolicy(), host="127.0.0.1", port=0)
    loop = asyncio.new_event_loop()
    ready, stop = asyncio.Event(), asyncio.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(srv.serve(ready=ready, stop=stop))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    for _ in range(200):
        if ready.is_set():
            break
        thread.join(0.02)
    assert ready.is_set(), "server did not start"
    yield srv
    loop.call_soon_threadsafe(stop.set)
    thread.join(5)


def test_infer_round_trip_with_metadata_and_timing(server: PolicyServer) -> None:
    with PolicyClient(f"ws://127.0.0.1:{server.port}") as client:
        assert client.metadata == {"horizon": 4}
        for _ in range(2):
            out = client.infer({"state": np.array([1.0, 2.0], np.float32)})
        assert out["actions"].shape == (4, 2) and np.allclose(out["actions"][3], [1, 2])
        assert out["server_timing"]["infer_ms"] >= 0 and "prev_total_ms" in out["server_timing"]


def test_policy_exception_reaches_client_as_error(server: PolicyServer) -> None:
    with PolicyClient(f"ws://127.0.0.1:{server.port}") as client:
        with pytest.raises(ServerError, match="boom in policy"):
            client.infer({"state": np.zeros(2, np.float32), "explode": True})


def test_healthz(server: PolicyServer) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5) as resp:
        assert resp.status == 200 and resp.read().strip() == b"OK"
