"""Vision encoders: letterbox preprocessing, SigLIP and conv shapes, swapping via the recipe."""

from __future__ import annotations

import pytest
import torch

from vlakit.components.vision._image import resize_with_pad
from vlakit.registry import VISION_ENCODERS


def test_resize_with_pad_maps_uint8_to_unit_range_and_letterboxes():
    img = torch.zeros(1, 4, 4, 3, dtype=torch.uint8)
    img[0, 0, 0] = 255
    out = resize_with_pad(img, height=4, width=4)
    assert out.shape == (1, 3, 4, 4)
    assert out[0, :, 0, 0].tolist() == [1.0, 1.0, 1.0] and out[0, :, 1, 1].tolist() == [-1.0] * 3
    wide = torch.full((2, 20, 40, 3), 255, dtype=torch.uint8)  # 1:2 aspect into a square
    out = resize_with_pad(wide, height=16, width=16)
    assert out.shape == (2, 3, 16, 16)
    rows_white = (out[0, 0] > 0.99).all(dim=1)
    assert rows_white.sum() == 8 and rows_white[4:12].all()  # centred 8 rows of image
    assert (out[0, :, :4] == -1).all() and (out[0, :, 12:] == -1).all()  # padding is black (-1)
    with pytest.raises(ValueError, match="uint8"):
        resize_with_pad(wide.float(), height=16, width=16)


@pytest.mark.parametrize("spec", [{"type": "siglip", "variant": "tiny_patch8_64"},
                                  {"type": "siglip", "variant": "tiny_patch16_64"},
                                  {"type": "conv", "image_size": 32, "channels": [8, 16]}])
def test_encoders_produce_tokens_of_the_requested_width(spec):
    cfg = VISION_ENCODERS.config_class(spec["type"]).model_validate(spec)
    enc = cfg.build(out_width=24)
    pixels = enc.preprocess(torch.randint(0, 256, (3, 50, 70, 3), dtype=torch.uint8))
    tokens = enc(pixels)
    assert tokens.shape == (3, enc.num_tokens, 24) and enc.out_width == 24
    tokens.sum().backward()
    assert all(p.grad is not None for p in enc.parameters())
    with pytest.raises(ValueError, match="preprocess"):
        enc(torch.zeros(1, 3, 10, 10))


def test_siglip_token_count_and_conv_divisibility_check():
    with torch.device("meta"):
        so400m = VISION_ENCODERS.config_class("siglip")(variant="so400m_patch14_224").build(out_width=2048)
    assert so400m.num_tokens == 256
    with pytest.raises(ValueError, match="divisible"):
        VISION_ENCODERS.config_class("conv")(image_size=36, channels=[8, 8, 8]).build(out_width=8)
