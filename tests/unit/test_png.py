"""PNG frames without PIL's per-image overhead: standard files, exact round trips, PIL for the rest."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from vlakit.data.png import decode_png, decode_simple_png, encode_png
from vlakit.envs.tabletop import TabletopConfig, TabletopEnv


def _frames() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    env = TabletopEnv(TabletopConfig())
    obs = env.reset(seed=3)
    rendered = [np.asarray(v) for k, v in obs.images.items()]
    return rendered + [rng.integers(0, 256, (5, 7, 3), dtype=np.uint8),  # noise: every wrap-around
                       np.zeros((1, 1, 3), np.uint8), np.full((3, 2, 3), 255, np.uint8)]


def _pil_png(img: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", **kw)
    return buf.getvalue()


def test_written_pngs_are_standard_and_round_trip_exactly():
    for img in _frames():
        data = encode_png(img)
        with Image.open(io.BytesIO(data)) as im:  # any PNG reader sees the same pixels
            np.testing.assert_array_equal(np.asarray(im.convert("RGB")), img)
        fast = decode_simple_png(data)
        assert fast is not None and fast.dtype == np.uint8
        np.testing.assert_array_equal(fast, img)
        np.testing.assert_array_equal(decode_png(data), img)


def test_pngs_of_other_forms_decode_through_pil():
    img = _frames()[0]
    pil = _pil_png(img)  # PIL's adaptive filters (Paeth, Up, ...): not the simple form
    assert decode_simple_png(pil) is None
    np.testing.assert_array_equal(decode_png(pil), img)
    rgba = np.dstack([img, np.full(img.shape[:2], 255, np.uint8)])
    assert decode_simple_png(_pil_png(rgba)) is None
    np.testing.assert_array_equal(decode_png(_pil_png(rgba)), img)
    grey = img[..., 0]
    np.testing.assert_array_equal(decode_png(_pil_png(grey)), np.repeat(grey[..., None], 3, axis=2))
    assert decode_png(encode_png(grey)).shape == grey.shape + (3,)  # non-RGB arrays are written by PIL


def test_a_png_that_inflates_past_its_header_goes_to_pil_and_buffers_are_accepted():
    import struct
    import zlib

    from vlakit.data.png import SIGNATURE, _chunk

    header = struct.pack(">II", 1, 1) + bytes((8, 2, 0, 0, 0))  # 1 x 1 RGB: 4 bytes of pixel data
    bomb = SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(bytes(1_000_000))) + _chunk(b"IEND", b"")
    import tracemalloc

    tracemalloc.start()
    try:
        assert decode_simple_png(bomb) is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200_000  # the 1 MB payload was not inflated: at most the 4 bytes the header promises
    img = _frames()[0]
    np.testing.assert_array_equal(decode_png(memoryview(encode_png(img))), img)


def test_damaged_pngs_are_not_decoded_silently():
    data = bytearray(encode_png(_frames()[0]))
    data[60] ^= 0xFF  # inside IDAT: its CRC no longer matches
    assert decode_simple_png(bytes(data)) is None
    with pytest.raises(OSError):  # PIL refuses it too, so the reader raises rather than returning pixels
        decode_png(bytes(data))
    assert decode_simple_png(encode_png(_frames()[0])[:-12]) is None  # truncated: no IEND
