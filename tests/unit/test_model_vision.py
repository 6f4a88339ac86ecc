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


def test_conv_coord_channels_tell_where_a_pattern_sits_inside_a_cell():
    """Without coordinates a stride-2 conv stack is translation-equivariant: a blob shifted by a whole
    cell produces the same cell feature. With CoordConv channels the features differ by position."""
    torch.manual_seed(0)
    blob = torch.zeros(1, 3, 32, 32)
    blob[:, :, 13:15, 13:15] = 1.0  # inside grid cell (3, 3) of the 8x8 grid, away from the zero padding
    shifted = torch.roll(blob, shifts=(4, 4), dims=(2, 3))  # one 4x4-pixel cell down and right: (4, 4)
    for coords in (False, True):
        enc = VISION_ENCODERS.config_class("conv")(image_size=32, channels=[4, 8], coord_channels=coords
                                                    ).build(out_width=8)
        assert enc.convs[0].in_channels == 3 + 2 * coords
        with torch.no_grad():
            enc.pos_embed.zero_()
            a, b = enc(blob), enc(shifted)
        same = torch.allclose(a[0, 3 * 8 + 3], b[0, 4 * 8 + 4], atol=1e-6)
        assert same is (not coords)


def test_conv_options_build_the_layers_they_name():
    cfg = VISION_ENCODERS.config_class("conv")(image_size=32, channels=[8, 16], stem=4, norm="group")
    enc = cfg.build(out_width=12)
    convs = enc.convs
    assert [(c.in_channels, c.out_channels, c.stride[0]) for c in convs] == [(3, 4, 1), (4, 8, 2), (8, 16, 2)]
    assert sum(isinstance(m, torch.nn.GroupNorm) for m in enc.body) == 3
    assert isinstance(enc.token_norm, torch.nn.LayerNorm) and enc.num_tokens == 64
    plain = VISION_ENCODERS.config_class("conv")(image_size=32, channels=[8, 16]).build(out_width=12)
    assert not any(isinstance(m, torch.nn.GroupNorm) for m in plain.body)
    # He initialisation keeps the signal: tokens of two different images differ substantially
    torch.manual_seed(0)
    a, b = torch.randint(0, 256, (2, 1, 32, 32, 3), dtype=torch.uint8)
    with torch.no_grad():
        ta, tb = enc(enc.preprocess(a)), enc(enc.preprocess(b))
    assert (ta - tb).norm() > 0.3 * ta.norm()
