"""``siglip``: a SigLIP ViT (learned position embedding, pre-LN blocks, GELU MLP, final LayerNorm,
no pooling) followed by a linear projector to the backbone width (reference §1.1).

Image features are not scaled by 1/sqrt(d) (openpi drops HF's scaling).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlakit.components.vision._image import SquareGridEncoder
from vlakit.config import ComponentConfig
from vlakit.registry import VISION_ENCODERS

#: variant -> (image_size, patch, width, depth, mlp_dim, num_heads)
VARIANTS: dict[str, tuple[int, int, int, int, int, int]] = {
    "so400m_patch14_224": (224, 14, 1152, 27, 4304, 16),
    "tiny_patch8_64": (64, 8, 64, 2, 128, 4),
    "tiny_patch16_64": (64, 16, 32, 1, 64, 2),
    "tiny_patch14_224": (224, 14, 64, 2, 128, 4),  # π0.5's token shape (256 per image) at tiny width
}


class SiglipConfig(ComponentConfig):
    """SigLIP vision encoder.

    Attributes:
        variant: ``so400m_patch14_224`` (π0/π0.5: 256 tokens of width 1152) or a tiny test size
            (``tiny_patch8_64``: 64 tokens, ``tiny_patch16_64``: 16 tokens, ``tiny_patch14_224``: 256 tokens).
    """

    type: Literal["siglip"] = "siglip"
    variant: Literal["so400m_patch14_224", "tiny_patch8_64", "tiny_patch16_64", "tiny_patch14_224"] = \
        "so400m_patch14_224"

    def build(self, *, out_width: int) -> SiglipEncoder:
        size, patch, width, depth, mlp, heads = VARIANTS[self.variant]
        blocks = [SiglipBlock(width=width, mlp_dim=mlp, num_heads=heads) for _ in range(depth)]
        return SiglipEncoder(image_size=size, patch_size=patch, width=width, blocks=blocks,
                             projector=nn.Linear(width, out_width))


class SiglipBlock(nn.Module):
    """Pre-LN transformer block: ``x + attn(ln1(x))``, then ``x + mlp(ln2(x))``."""

    def __init__(self, *, width: int, mlp_dim: int, num_heads: int) -> None:
        super().__init__()
        if width % num_heads:
            raise ValueError(f"SigLIP width {width} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.ln1 = nn.LayerNorm(width, eps=1e-6)
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(width, width) for _ in range(3))
        self.out_proj = nn.Linear(width, width)
        self.ln2 = nn.LayerNorm(width, eps=1e-6)
        self.fc1 = nn.Linear(width, mlp_dim)
        self.fc2 = nn.Linear(mlp_dim, width)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, N, D]`` -> ``[B, N, D]``."""
        b, n, d = x.shape
        h = self.ln1(x)
        q, k, v = (p(h).view(b, n, self.num_heads, d // self.num_heads).transpose(1, 2)
                   for p in (self.q_proj, self.k_proj, self.v_proj))
        att = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d)
        x = x + self.out_proj(att)
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x)), approximate="tanh"))


@VISION_ENCODERS.register
class SiglipEncoder(SquareGridEncoder):
    """Patchify, add learned positions, run the blocks, final LayerNorm, project. Built by the Config."""

    display_name = "SigLIP"
    Config = SiglipConfig

    @classmethod
    def test_config(cls) -> SiglipConfig:
        """Small variant for the conformance suite."""
        return SiglipConfig(variant="tiny_patch8_64")

    def __init__(self, *, image_size: int, patch_size: int, width: int, blocks: list[nn.Module],
                 projector: nn.Linear) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image size {image_size} is not a multiple of patch size {patch_size}")
        self.image_size = image_size
        self.patch_embed = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size)
        grid = image_size // patch_size
        self.pos_embed = nn.Parameter(torch.randn(1, grid * grid, width) * width ** -0.5)
        self.blocks = nn.ModuleList(blocks)
        self.encoder_norm = nn.LayerNorm(width, eps=1e-6)
        self.projector = projector

    def features(self, pixels: Tensor) -> Tensor:
        self.check_pixels(pixels)
        x = self.patch_embed(pixels.to(self.patch_embed.weight.dtype)).flatten(2).transpose(1, 2)
        x = x + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.encoder_norm(x)
