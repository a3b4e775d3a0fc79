"""3x3 convolutions by Winograd's minimal filtering F(4x4, 3x3), for wide layers on CPU inference.

A 3x3 convolution computes each 4x4 output tile from a 6x6 input tile; Winograd's algorithm
(Lavin & Gray, CVPR 2016) does it with 36 channel products instead of 144, in a transformed
domain:

    Y = A^T [ (G g G^T) * (B^T d B) ] A      per tile, summed over input channels,

so the convolution becomes 36 independent matrix products (tiles x C_in) @ (C_in x C_out)
through oneDNN, 4x fewer multiply-adds than the direct convolution. The input and output
transforms are additions over the feature maps, cheap next to the products when channels
are wide (the frequency transformer's 512 and 1024: on an AMD EPYC x86-64 CPU, one thread, a
512-channel 90 x 160 convolution takes ~130 ms against ~250 ms direct); at 64 channels they
would cost more than they save, so narrow layers stay direct.

Float32 throughout. The transforms use the interpolation points 0, +-1, +-2 (the usual
choice, Lavin & Gray); the result differs from the direct convolution by rounding only:
about 3x the direct convolution's own float32 error (mean relative 3e-6 at 512 channels).

The filter transform G w G^T costs as much as the convolution of a small frame (a (36 x 9) @
(9 x O C) product: 35-60 ms for a 512-channel layer on one thread, 90-135 ms at 1024 inputs,
where the 36 products for the 24 x 40 DCT grid of a 48 x 80 LR frame take ~25 ms), and a
forward pass runs each wide layer with the same weights on every frame and in both directions.
Inside `reuse_filters()` (entered by `FTVSR.forward` and `super_resolve`) each layer's
transformed filters are computed once, already reordered into oneDNN's blocked layout for the
36 products (`onednn.pack`: the same products, bit for bit, ~5-10 % faster), and reused: the
same outputs as transforming at every call, bit for bit.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

from ftvsr.models import onednn

MIN_CHANNELS = 256  # input and output channels from which the transforms pay for themselves
BAND_BYTES = 16 * 2**20  # size of the transformed input of one band of tile rows

# G (6 x 3): the filter transform, rows = interpolation points 0, 1, -1, 2, -2, infinity
_G = (
    (1 / 4, 0.0, 0.0),
    (-1 / 6, -1 / 6, -1 / 6),
    (-1 / 6, 1 / 6, -1 / 6),
    (1 / 24, 1 / 12, 1 / 6),
    (1 / 24, -1 / 12, 1 / 6),
    (0.0, 0.0, 1.0),
)


_local = threading.local()  # .cache: {id(weight): (weight, version, {rows: packed filters})} or None


@contextmanager
def reuse_filters() -> Iterator[None]:
    """Within the block, each layer's transformed filters are computed once and reused (per thread).

    The cache lives until the outermost block ends. It holds 4x each wide weight (36 / 9 values:
    ~38 MB per 512-channel layer, ~0.57 GB for the published FTVSR's 14 wide layers; peak memory
    of a 3-frame 160 x 90 forward 1.03 -> 1.26 GB); a weight modified in place meanwhile (its
    version counter moves) or replaced is transformed again.
    """
    if getattr(_local, "cache", None) is not None:
        yield
        return
    _local.cache = {}
    try:
        yield
    finally:
        _local.cache = None


def _version(weight: torch.Tensor) -> int | None:
    try:
        return weight._version
    except RuntimeError:  # an inference tensor: no version counter, and not modifiable outside inference mode
        return None


def _filters(weight: torch.Tensor, rows: int) -> Sequence[torch.Tensor]:
    """The 36 transformed (O, C) filters of `weight`, packed for products of about `rows` rows when cached."""
    cache = getattr(_local, "cache", None)
    if cache is None:
        return _filter_transform(weight).unbind(0)
    version = _version(weight)
    entry = cache.get(id(weight))
    if entry is None or entry[0] is not weight or entry[1] != version:
        entry = (weight, version, {})
        cache[id(weight)] = entry
    packed = entry[2].get(rows)
    if packed is None:
        packed = [onednn.pack(f, rows) for f in _filter_transform(weight)]
        entry[2][rows] = packed
    return packed


def applies(conv: torch.nn.Conv2d, x: torch.Tensor) -> bool:
    """Whether `conv(x)` may be computed here: a wide 3x3, stride 1, padding 1 convolution on CPU inference."""
    return (
        conv.kernel_size == (3, 3)
        and conv.stride == (1, 1)
        and conv.padding == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
        and min(conv.in_channels, conv.out_channels) >= MIN_CHANNELS
        and x.dim() == 4
        and onednn.applies(x, conv.weight, *(() if conv.bias is None else (conv.bias,)))
    )


def _filter_transform(weight: torch.Tensor) -> torch.Tensor:
    """(O, C, 3, 3) -> (36, O, C): U[6 i + j] = (G w G^T)[i, j] for every (output, input) channel pair."""
    out_channels, in_channels = weight.shape[:2]
    g = torch.tensor(_G, dtype=weight.dtype, device=weight.device)
    gg = torch.einsum("ir,jc->ijrc", g, g).reshape(36, 9)  # (G (x) G): 36 x 9
    return torch.mm(gg, weight.reshape(out_channels * in_channels, 9).t()).view(36, out_channels, in_channels)


def _input_rows(d: list[torch.Tensor], out: list[torch.Tensor], a: torch.Tensor, b: torch.Tensor) -> None:
    """out[i] = sum_r B^T[i, r] d[r] for the six rows of B^T (points 0, 1, -1, 2, -2, infinity).

    a, b: scratch tensors of the outputs' shape.
    """
    d0, d1, d2, d3, d4, d5 = d
    torch.add(d4, d2, alpha=-5, out=out[0]).add_(d0, alpha=4)  # 4 d0 - 5 d2 + d4
    torch.add(d4, d2, alpha=-4, out=a)  # d4 - 4 d2
    torch.add(d3, d1, alpha=-4, out=b)  # d3 - 4 d1
    torch.add(a, b, out=out[1])  # -4 d1 - 4 d2 + d3 + d4
    torch.sub(a, b, out=out[2])  # 4 d1 - 4 d2 - d3 + d4
    torch.sub(d4, d2, out=a)  # d4 - d2
    torch.sub(d3, d1, out=b)  # d3 - d1
    torch.add(a, b, alpha=2, out=out[3])  # -2 d1 - d2 + 2 d3 + d4
    torch.add(a, b, alpha=-2, out=out[4])  # 2 d1 - d2 - 2 d3 + d4
    torch.add(d5, d3, alpha=-5, out=out[5]).add_(d1, alpha=4)  # 4 d1 - 5 d3 + d5


def _output_rows(m: list[torch.Tensor], out: list[torch.Tensor], scratch: list[torch.Tensor]) -> None:
    """out[r] = sum_i A^T[r, i] m[i] for the four rows of A^T (powers 0..3 of the points).

    scratch: four tensors of the outputs' shape.
    """
    m0, m1, m2, m3, m4, m5 = m
    s12, d12, s34, d34 = scratch
    torch.add(m1, m2, out=s12)
    torch.sub(m1, m2, out=d12)
    torch.add(m3, m4, out=s34)
    torch.sub(m3, m4, out=d34)
    torch.add(m0, s12, out=out[0]).add_(s34)  # m0 + m1 + m2 + m3 + m4
    torch.add(d12, d34, alpha=2, out=out[1])  # m1 - m2 + 2 (m3 - m4)
    torch.add(s12, s34, alpha=4, out=out[2])  # m1 + m2 + 4 (m3 + m4)
    torch.add(d12, d34, alpha=8, out=out[3]).add_(m5)  # m1 - m2 + 8 (m3 - m4) + m5


def conv3x3(conv: torch.nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """`conv(x)` by F(4x4, 3x3); x (n, C, H, W) on the conditions of `applies`. Returns channels-last.

    Works through bands of tile rows, so that every intermediate stays a few MB (cache-sized,
    and reused from the allocator rather than fresh pages).
    """
    n, channels, height, width = x.shape
    out_channels = conv.out_channels
    th, tw = -(-height // 4), -(-width // 4)  # output tiles
    cols = 4 * tw + 2  # padded input columns covering every 6x6 input tile
    band = max(1, BAND_BYTES // (36 * 4 * channels * n * tw))  # tile rows per band
    image = x.permute(0, 2, 3, 1)  # (n, H, W, C), a view of the channels-last input
    out = x.new_empty(n, height, 4 * tw, out_channels)  # whole tiles across, cropped at the end
    filters = _filters(conv.weight, n * band * tw)  # 36 x (O, C)

    for t0 in range(0, th, band):
        bt = min(band, th - t0)
        tiles = n * bt * tw
        # zero-padded input rows of the band: padded row p = image row p - 1
        first, last = 4 * t0, 4 * (t0 + bt) + 2  # padded rows [first, last)
        slab = x.new_zeros(n, last - first, cols, channels)
        top, bottom = max(first, 1), min(last, height + 1)
        slab[:, top - first : bottom - first, 1 : width + 1] = image[:, top - 1 : bottom - 1]

        # input transform B^T d B, separably: tile rows, then tile columns -> (36, tiles, C)
        row_sums = [x.new_empty(n, bt, cols, channels) for _ in range(6)]
        scratch = [x.new_empty(n, bt, cols, channels) for _ in range(2)]
        _input_rows([slab[:, r : r + 4 * bt - 3 : 4] for r in range(6)], row_sums, *scratch)
        transformed = x.new_empty(36, n, bt, tw, channels)
        scratch = [x.new_empty(n, bt, tw, channels) for _ in range(2)]
        for i in range(6):
            _input_rows(
                [row_sums[i][:, :, c : c + 4 * tw - 3 : 4] for c in range(6)],
                list(transformed[6 * i : 6 * i + 6]),
                *scratch,
            )
        transformed = transformed.view(36, tiles, channels)

        # 36 matrix products (tiles, C) @ (C, O); the bias enters at (1, 1), which A^T . A
        # spreads to every output of the tile with weight 1 (A^T's column for the point 1 is all ones)
        products = [onednn.matmul(transformed[k], filters[k], conv.bias if k == 7 else None) for k in range(36)]

        # output transform A^T M A: rows, then columns written into the output pixels
        scratch = [x.new_empty(tiles, out_channels) for _ in range(4)]
        out_rows = [[x.new_empty(n, bt, tw, out_channels) for _ in range(6)] for _ in range(4)]
        del row_sums  # the input transform's sums are no longer needed: free them before the products' sums fill
        for j in range(6):
            _output_rows(
                [products[6 * i + j] for i in range(6)], [out_rows[r][j].view(tiles, -1) for r in range(4)], scratch
            )
        scratch = [x.new_empty(n, bt, tw, out_channels) for _ in range(4)]
        for r in range(4):
            rows = min(bt, -(-(height - r) // 4) - t0)  # tile rows whose output row r is in the image
            if rows > 0:
                _output_rows(
                    [z[:, :rows] for z in out_rows[r]],
                    [out[:, 4 * t0 + r :: 4][:, :rows, s::4] for s in range(4)],
                    [a[:, :rows] for a in scratch],
                )
    if width < 4 * tw:
        out = out[:, :, :width]
    return out.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
