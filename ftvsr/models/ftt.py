"""The frequency transformer (FTT): DCT, frequency attention, bidirectional propagation.

FTVSR's second stage works on k x k DCT coefficients (k = 8) of the first stage's 4x output
and of the upsampled base. Each frame becomes a (3 k^2)-channel map at 1/k resolution; a
convolutional stem widens it to `channels` features. Frequency attention cuts a feature map
into 64 frequency groups of `channels / 64` channels and 8 x 8 spatial patches, one token per
(group, patch), so attention runs jointly over frequency bands and positions. Features are
propagated backward then forward in time along the flows, the two directions fused, and
the predicted coefficient residual turned back into an image with the inverse DCT.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ftvsr.models import onednn
from ftvsr.models.blocks import ResidualBlocksWithInputConv
from ftvsr.models.spynet import flow_warp

FREQUENCY_GROUPS = 64  # published: features are split into 64 groups (a frequency band each)
ATTENTION_PATCH = 8  # spatial patch of one attention token, in DCT-block units
ATTENTION_MODES = ("sdpa", "materialized")


# ---------------------------------------------------------------- DCT as fixed convolutions


def dct_basis(k: int) -> torch.Tensor:
    """Orthonormal 2-D DCT-II basis as conv weights: (k * k, 1, k, k), float32.

    Entry [u * k + v, 0, i, j] = c(u, i) * c(v, j) with c(f, p) = cos(pi f (p + 1/2) / k) / sqrt(k),
    times sqrt(2) for f > 0; computed in double precision with the same arithmetic as the
    published `generate_dct_matrix`, then rounded once to float32.
    """

    def c(freq: int, pos: int) -> float:
        value = math.cos(math.pi * freq * (pos + 0.5) / k) / math.sqrt(k)
        return value if freq == 0 else value * math.sqrt(2)

    basis = torch.tensor(
        [[[c(u, i) * c(v, j) for j in range(k)] for i in range(k)] for u in range(k) for v in range(k)],
        dtype=torch.float64,
    )
    return basis.float().unsqueeze(1)


class FixedBasis(nn.Module):
    """Holds a DCT basis as a parameter named `weight` that starts frozen, as the published code does.

    The trainer freezes it (`train.freeze_dct`, the REDS recipe) or lets it train (the published
    Vimeo-90K recipe, which has no `freeze_dct`).
    """

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight, requires_grad=False)


class DCT(nn.Module):
    """Blockwise k x k DCT: (b, c, H, W) -> (b, c * k^2, H / k, W / k), channel-major coefficients.

    H and W must be multiples of k.
    """

    def __init__(self, channels: int = 3, k: int = 8) -> None:
        super().__init__()
        self.channels, self.k = channels, k
        self.dct_conv = FixedBasis(torch.cat([dct_basis(k)] * channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.dct_conv.weight.to(x.dtype), stride=self.k, groups=self.channels)


class InverseDCT(nn.Module):
    """Inverse of `DCT`: (b, c * k^2, h, w) -> (b, c, h * k, w * k)."""

    def __init__(self, channels: int = 3, k: int = 8) -> None:
        super().__init__()
        self.channels, self.k = channels, k
        self.reverse_dct_conv = FixedBasis(torch.cat([dct_basis(k)] * channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose2d(x, self.reverse_dct_conv.weight.to(x.dtype), stride=self.k, groups=self.channels)


# ---------------------------------------------------------------- frequency attention


def frequency_tokens(x: torch.Tensor, patch: int = ATTENTION_PATCH) -> torch.Tensor:
    """(n, C, h, w) -> (n, 64 * (h // patch) * (w // patch), (C / 64) * patch^2).

    One token per (frequency group, spatial patch), group-major; rows / columns beyond a
    whole number of patches are dropped (as `unfold` does in the published code).
    """
    n, c, h, w = x.shape
    nh, nw = h // patch, w // patch
    g = c // FREQUENCY_GROUPS
    x = x[:, :, : nh * patch, : nw * patch].reshape(n, FREQUENCY_GROUPS, g, nh, patch, nw, patch)
    return x.permute(0, 1, 3, 5, 2, 4, 6).reshape(n, FREQUENCY_GROUPS * nh * nw, g * patch * patch)


def frequency_untokens(tokens: torch.Tensor, size: tuple[int, int], patch: int = ATTENTION_PATCH) -> torch.Tensor:
    """Inverse of `frequency_tokens`; dropped border rows / columns come back as zeros."""
    h, w = size
    n, _, dim = tokens.shape
    nh, nw = h // patch, w // patch
    g = dim // (patch * patch)
    x = tokens.reshape(n, FREQUENCY_GROUPS, nh, nw, g, patch, patch).permute(0, 1, 4, 2, 5, 3, 6)
    x = x.reshape(n, FREQUENCY_GROUPS * g, nh * patch, nw * patch)
    return F.pad(x, (0, w - nw * patch, 0, h - nh * patch))


class FrequencyAttention(nn.Module):
    """One transformer layer over frequency tokens (the published `FTTA_layer`).

    forward(q, k, v): three (n, C, h, w) maps, C = `channels` (a multiple of 64), h, w >= 8.
    Tokens are embedded (`layer_q/k/v`), attend with `n_heads` heads, the value embedding is
    added back and normalised, then a residual feed-forward with a second norm and a
    projection back to token size. Returns (n, C, h, w).

    `attention="sdpa"` uses `scaled_dot_product_attention` (memory linear in the number of
    tokens; on CPU inference the same attention by blocks of queries through oneDNN,
    `ftvsr.models.onednn.attention`); `"materialized"` builds the full attention matrix
    exactly as the published code (nn.MultiheadAttention with returned weights): a
    reference for tests and benchmarks.
    """

    def __init__(self, channels: int = 512, d_model: int = 512, n_heads: int = 4, attention: str = "sdpa") -> None:
        super().__init__()
        token_dim = (channels // FREQUENCY_GROUPS) * ATTENTION_PATCH * ATTENTION_PATCH
        self.attention = attention
        self.layer_q = nn.Linear(token_dim, d_model)
        self.layer_k = nn.Linear(token_dim, d_model)
        self.layer_v = nn.Linear(token_dim, d_model)
        self.MultiheadAttention = nn.MultiheadAttention(d_model, n_heads)  # name kept for checkpoints
        self.norm1 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.linear2 = nn.Linear(d_model, token_dim)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Multi-head attention on (n, L, d_model) embeddings -> (n, L, d_model)."""
        mha = self.MultiheadAttention
        if self.attention == "materialized":
            out, _ = F.multi_head_attention_forward(
                q.transpose(0, 1),
                k.transpose(0, 1),
                v.transpose(0, 1),
                mha.embed_dim,
                mha.num_heads,
                mha.in_proj_weight,
                mha.in_proj_bias,
                None,
                None,
                False,
                0.0,
                mha.out_proj.weight,
                mha.out_proj.bias,
                training=False,
                need_weights=True,
            )
            return out.transpose(0, 1)
        if onednn.applies(q, k, v, mha.in_proj_weight, mha.in_proj_bias):
            return self._attend_onednn(q, k, v)
        n, length, d_model = q.shape
        heads = mha.num_heads
        w_q, w_k, w_v = mha.in_proj_weight.chunk(3)
        b_q, b_k, b_v = mha.in_proj_bias.chunk(3)

        def split(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
            return F.linear(x, weight, bias).view(n, -1, heads, d_model // heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(q, w_q, b_q), split(k, w_k, b_k), split(v, w_v, b_v))
        return mha.out_proj(out.transpose(1, 2).reshape(n, length, d_model))

    def _attend_onednn(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The "sdpa" path on CPU inference: the same attention, one head and one block of
        queries at a time through oneDNN (see `ftvsr.models.onednn`); memory O(L) as SDPA's."""
        mha = self.MultiheadAttention
        heads, d_model = mha.num_heads, mha.embed_dim
        head_dim = d_model // heads
        scale = head_dim**-0.5  # SDPA's default scale, applied to the query projection
        w_q, w_k, w_v = mha.in_proj_weight.chunk(3)
        b_q, b_k, b_v = mha.in_proj_bias.chunk(3)
        outputs = []
        for b in range(q.shape[0]):
            per_head = []
            for h in range(heads):
                rows = slice(h * head_dim, (h + 1) * head_dim)
                q_h = onednn.linear(q[b], w_q[rows] * scale, b_q[rows] * scale)  # (L, head_dim)
                k_h = onednn.linear(k[b], w_k[rows], b_k[rows])  # (S, head_dim)
                v_h_t = onednn.linear(w_v[rows], v[b]) + b_v[rows, None]  # (head_dim, S): v_h transposed
                per_head.append(onednn.attention(q_h, k_h, v_h_t))
            outputs.append(torch.cat(per_head, dim=1))
        return onednn.linear(torch.stack(outputs), mha.out_proj.weight, mha.out_proj.bias)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        size = (q.shape[-2], q.shape[-1])
        k_tokens = frequency_tokens(k)
        v_tokens = k_tokens if v is k else frequency_tokens(v)  # FTT always attends with k = v
        q_emb = _linear(self.layer_q, frequency_tokens(q))
        k_emb = _linear(self.layer_k, k_tokens)
        v_emb = _linear(self.layer_v, v_tokens)
        x = self.norm1(self._attend(q_emb, k_emb, v_emb) + v_emb)
        x = self.norm2(F.leaky_relu(_linear(self.linear1, x), 0.1) + x)
        return frequency_untokens(_linear(self.linear2, x), size)


def _linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """`layer(x)`, through oneDNN on CPU inference (`ftvsr.models.onednn.linear`)."""
    return onednn.linear(x, layer.weight, layer.bias)


# ---------------------------------------------------------------- the frequency transformer


def resize_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a flow (b, 2, h, w) to `size`, rescaling its values to the new pixel units."""
    scaled = flow.clone()
    scaled[:, 0] *= size[1] / flow.shape[3]
    scaled[:, 1] *= size[0] / flow.shape[2]
    return F.interpolate(scaled, size=size, mode="bilinear", align_corners=False)


class FTT(nn.Module):
    """Frequency-transformer refinement of a 4x video.

    forward(base, first, flows): `base` the upsampled LR clip and `first` the first-stage
    output, both (n, t, 3, H, W) with H, W multiples of k and H / k, W / k >= 8; `flows` the
    `(to_previous, to_next)` flows between neighbouring frames of `first`, each
    (n, t - 1, 2, H, W), or None for zero motion. Returns (n, t, 3, H, W).

    `hf_once=False` is the published output rdct(residual + dct(first)) + first, which counts
    the first-stage image twice (the DCT is orthonormal); `hf_once=True` gives
    rdct(residual) + first.
    """

    def __init__(
        self,
        dct_kernel: tuple[int, int] = (8, 8),
        d_model: int = 512,
        n_heads: int = 4,
        channels: int = 512,
        hf_once: bool = False,
        attention: str = "sdpa",
    ) -> None:
        super().__init__()
        k = dct_kernel[0]
        coefficients = 3 * k * k
        self.k = k
        self.channels = channels
        self.hf_once = hf_once
        self.dct = DCT(3, k)
        self.rdct = InverseDCT(3, k)
        self.conv_layer1 = nn.Conv2d(coefficients, channels, 1, 1, 0, bias=True)
        self.feat_extractor = ResidualBlocksWithInputConv(channels, channels, 3)
        self.resblocks = ResidualBlocksWithInputConv(2 * channels, channels, 3)
        self.fusion = nn.Sequential(
            nn.Conv2d(3 * channels, channels, 1, 1, 0, bias=True),
            nn.LeakyReLU(negative_slope=0.1, inplace=True),
            nn.Conv2d(channels, channels, 1, 1, 0, bias=True),
        )
        self.ftta = FrequencyAttention(channels, d_model, n_heads, attention)
        self.conv_layer2 = nn.Conv2d(channels, coefficients, 1, 1, 0, bias=True)

    def _normalized_coefficients(self, coefficients: torch.Tensor) -> torch.Tensor:
        """Scale each DCT coefficient channel to unit L2 norm over the frame (published input scaling)."""
        b, c = coefficients.shape[:2]
        return F.normalize(coefficients.reshape(b, c, -1), dim=2).view_as(coefficients)

    def forward(
        self, base: torch.Tensor, first: torch.Tensor, flows: tuple[torch.Tensor, torch.Tensor] | None
    ) -> torch.Tensor:
        n, t, _, big_h, big_w = first.shape
        h, w = big_h // self.k, big_w // self.k
        if flows is not None:
            to_previous, to_next = (
                resize_flow(f.reshape(-1, 2, big_h, big_w), (h, w)).view(n, t - 1, 2, h, w) for f in flows
            )

        # DCT coefficients and features, one frame at a time (bounds memory on long clips)
        first_coefficients, base_features, first_features = [], [], []
        for i in range(t):
            coefficients = self.dct(torch.cat([base[:, i], first[:, i]]))
            first_coefficients.append(coefficients[n:])
            normalized = self._normalized_coefficients(coefficients)
            features = self.feat_extractor(onednn.conv1x1(self.conv_layer1, normalized))
            base_features.append(features[:n])
            first_features.append(features[n:])

        # the frame's own attention (base -> first) is the same in both directions: computed once
        attended: dict[int, torch.Tensor] = {}

        def attend_frame(i: int) -> torch.Tensor:
            if i not in attended:
                attended[i] = self.ftta(base_features[i], first_features[i], first_features[i])
            return attended[i]

        def step(i: int, prop: torch.Tensor, flow: torch.Tensor | None) -> torch.Tensor:
            if flow is not None:
                prop = flow_warp(prop, flow.permute(0, 2, 3, 1), padding_mode="border")
            return self.ftta(attend_frame(i), prop, prop)

        backward_features: list[torch.Tensor] = []  # last frame first: popped below in frame order
        prop = first_features[0].new_zeros(n, self.channels, h, w)
        for i in range(t - 1, -1, -1):
            if i < t - 1:
                prop = step(i, prop, to_next[:, i] if flows is not None else None)
            prop = self.resblocks(torch.cat([first_features[i], prop], dim=1))
            backward_features.append(prop)

        fuse_in, fuse_activation, fuse_out = self.fusion  # conv, LeakyReLU, conv
        assert isinstance(fuse_in, nn.Conv2d) and isinstance(fuse_out, nn.Conv2d)  # as built in __init__
        outputs = []
        prop = torch.zeros_like(prop)
        for i in range(t):
            if i > 0:
                prop = step(i, prop, to_previous[:, i - 1] if flows is not None else None)
                attended.pop(i, None)  # no longer needed
            prop = self.resblocks(torch.cat([first_features[i], prop], dim=1))
            # popped: frame i's backward features are freed once fused
            fused = torch.cat([backward_features.pop(), first_features[i], prop], dim=1)
            fused = fuse_activation(onednn.conv1x1(fuse_in, fused))
            residual = onednn.conv1x1(self.conv_layer2, onednn.conv1x1(fuse_out, fused))
            if not self.hf_once:
                residual = residual + first_coefficients[i]
            outputs.append(self.rdct(residual) + first[:, i])
        return torch.stack(outputs, dim=1)
