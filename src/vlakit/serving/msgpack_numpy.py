"""msgpack with numpy arrays, wire-compatible with openpi-client's ``msgpack_numpy``.

ndarray -> ``{b"__ndarray__": True, b"data": bytes, b"dtype": dtype.str, b"shape": shape}``;
numpy scalar -> ``{b"__npgeneric__": True, b"data": item, b"dtype": dtype.str}``. Object, void and
complex dtypes are rejected: nothing is ever pickled.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

_REJECTED_KINDS = ("O", "V", "c")


def _encode(obj: Any) -> Any:
    if isinstance(obj, (np.ndarray, np.generic)) and obj.dtype.kind in _REJECTED_KINDS:
        raise ValueError(f"unsupported dtype {obj.dtype} (object, void and complex arrays are not sent)")
    if isinstance(obj, np.ndarray):
        return {b"__ndarray__": True, b"data": np.ascontiguousarray(obj).tobytes(), b"dtype": obj.dtype.str,
                b"shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    return obj


def _decode(obj: dict) -> Any:
    if b"__ndarray__" in obj:
        dtype = np.dtype(obj[b"dtype"])
        if dtype.kind in _REJECTED_KINDS:
            raise ValueError(f"refusing to decode an array of dtype {dtype}")
        return np.frombuffer(obj[b"data"], dtype=dtype).reshape(obj[b"shape"])
    if b"__npgeneric__" in obj:
        return np.dtype(obj[b"dtype"]).type(obj[b"data"])
    return obj


def packb(obj: Any) -> bytes:
    return msgpack.packb(obj, default=_encode)


def unpackb(data: bytes) -> Any:
    return msgpack.unpackb(data, object_hook=_decode)
