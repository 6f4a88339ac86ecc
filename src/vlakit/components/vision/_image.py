"""Image preprocessing shared by the built-in vision encoders."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlakit.interfaces.vision import VisionEncoder


def resize_with_pad(images: Tensor, *, height: int, width: int) -> Tensor:
    """uint8 ``[B, h, w, 3]`` -> float32 ``[B, 3, height, width]`` in [-1, 1].

    Letterbox resize as openpi's ``resize_with_pad``: keep the aspect ratio, bilinear (antialiased
    when shrinking), centre the image and pad with -1 (black). Images already at the target size are
    only rescaled to [-1, 1].
    """
    if images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 [B, h, w, 3], got dtype {images.dtype}")
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be uint8 [B, h, w, 3], got shape {tuple(images.shape)}")
    x = images.permute(0, 3, 1, 2).float() / 255.0 * 2.0 - 1.0
    h, w = x.shape[-2:]
    if (h, w) == (height, width):
        return x.contiguous()
    ratio = max(w / width, h / height)
    new_h, new_w = max(1, int(h / ratio)), max(1, int(w / ratio))
    x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=ratio > 1)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    out = torch.full((x.shape[0], 3, height, width), -1.0, dtype=x.dtype, device=x.device)
    out[:, :, top:top + new_h, left:left + new_w] = x.clamp(-1.0, 1.0)
    return out


class SquareGridEncoder(VisionEncoder):
    """Shared base of the built-in encoders: a square ``image_size`` input, one token per grid cell
    with a learned ``pos_embed`` ``[1, N, C]``, and a linear ``projector`` to the backbone width."""

    image_size: int
    pos_embed: nn.Parameter
    projector: nn.Linear
    display_name = "vision encoder"

    @property
    def num_tokens(self) -> int:
        return self.pos_embed.shape[1]

    @property
    def out_width(self) -> int:
        return self.projector.out_features

    @property
    def grid_size(self) -> int:
        """Tokens per side of the square token grid."""
        return math.isqrt(self.num_tokens)

    @property
    def feature_width(self) -> int:
        """Width of :meth:`features` (the projector's input)."""
        return self.projector.in_features

    def features(self, pixels: Tensor) -> Tensor:
        """``[B, 3, H, W]`` -> ``[B, N, feature_width]`` token features before the projector, row-major
        over the grid from the top-left cell (what dense vision pre-training trains)."""
        raise NotImplementedError(f"{type(self).__name__} does not expose token features")

    def forward(self, pixels: Tensor) -> Tensor:
        return self.projector(self.features(pixels))

    def preprocess(self, images: Tensor) -> Tensor:
        return resize_with_pad(images, height=self.image_size, width=self.image_size)

    def check_pixels(self, pixels: Tensor) -> None:
        """Raise unless ``pixels`` is ``[B, 3, image_size, image_size]`` (what :meth:`preprocess` returns)."""
        if pixels.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"{self.display_name} expects [B, 3, {self.image_size}, {self.image_size}] pixels "
                             f"(use preprocess), got {tuple(pixels.shape)}")
