"""``conv``: a small strided-convolution encoder -- a cheap, genuinely different vision part.

Each stage is a 3x3 stride-2 convolution with GELU; the final feature map's cells become tokens
(plus a learned position embedding) and a linear layer projects them to the backbone width.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from vlakit.components.vision._image import SquareGridEncoder
from vlakit.config import ComponentConfig
from vlakit.registry import VISION_ENCODERS


class ConvConfig(ComponentConfig):
    """Convolutional encoder.

    Attributes:
        image_size: square input size; must be divisible by ``2 ** len(channels)``.
        channels: output channels of each stride-2 stage.
    """

    type: Literal["conv"] = "conv"
    image_size: int = Field(64, ge=8)
    channels: tuple[int, ...] = Field((32, 64, 64), min_length=1)

    def build(self, *, out_width: int) -> ConvEncoder:
        stride = 2 ** len(self.channels)
        if self.image_size % stride:
            raise ValueError(f"conv encoder: image_size {self.image_size} is not divisible by {stride} "
                             f"(2 ** number of stages)")
        ins = (3, *self.channels[:-1])
        convs = [nn.Conv2d(i, o, kernel_size=3, stride=2, padding=1) for i, o in zip(ins, self.channels)]
        grid = self.image_size // stride
        return ConvEncoder(image_size=self.image_size, convs=convs, num_tokens=grid * grid,
                           projector=nn.Linear(self.channels[-1], out_width))


@VISION_ENCODERS.register
class ConvEncoder(SquareGridEncoder):
    """Strided convolutions -> grid tokens -> linear projector. Built by :class:`ConvConfig`."""

    display_name = "conv encoder"
    Config = ConvConfig

    def __init__(self, *, image_size: int, convs: list[nn.Conv2d], num_tokens: int, projector: nn.Linear) -> None:
        super().__init__()
        self.image_size = image_size
        self.convs = nn.ModuleList(convs)
        self.pos_embed = nn.Parameter(torch.randn(1, num_tokens, convs[-1].out_channels) * 0.02)
        self.projector = projector

    def forward(self, pixels: Tensor) -> Tensor:
        self.check_pixels(pixels)
        x = pixels.to(self.convs[0].weight.dtype)
        for conv in self.convs:
            x = F.gelu(conv(x))
        return self.projector(x.flatten(2).transpose(1, 2) + self.pos_embed)
