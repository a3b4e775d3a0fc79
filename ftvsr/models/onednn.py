"""CPU inference kernels through oneDNN: matrix products, the frequency attention, layouts.

On CPU, `F.linear`, `torch.matmul` and `scaled_dot_product_attention` run their products
through the BLAS torch was built with (MKL in the official wheels). oneDNN, which torch
already uses for convolutions, runs the same float32 products through its own JIT kernels
and is several times faster on some CPUs (measured on an AMD EPYC x86-64 CPU, one thread:
about 230 GFLOP/s against 50-100 for MKL's sgemm). `torch.ops.mkldnn._linear_pointwise` is the
oneDNN matmul torch itself uses for frozen CPU graphs (inductor); it takes plain tensors.

Everything here is float32 arithmetic with the same products as the plain ops, only summed
in another order (differences ~1e-6 relative). It is used only where it applies: CPU,
float32, no autocast, no autograd graph to build, and oneDNN enabled; otherwise callers
fall back to the plain ops. Whether the op exists and agrees with `F.linear` is checked
once, on first use.

`attention` is the "sdpa" attention on CPU inference: exact softmax attention one block
of queries at a time, its two products through oneDNN (on that CPU about twice
as fast as `scaled_dot_product_attention`'s CPU kernel, whose products go through MKL),
with the same O(L) memory.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

ATTENTION_CHUNK = 256  # queries per block: a (chunk, L) score block stays small (14 MB at L = 14080)

_available: bool | None = None
_packing = False  # whether weights can be pre-packed (`pack`)


def matmul(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x @ weight^T + bias by oneDNN; weight plain (out, in) or from `pack`. Only when `applies`."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


def available() -> bool:
    """Whether oneDNN's matmul op exists here and agrees with `F.linear` (checked once)."""
    global _available, _packing
    if _available is None:
        try:
            with torch.inference_mode():
                g = torch.Generator().manual_seed(0)
                x, w = torch.randn(7, 24, generator=g), torch.randn(40, 24, generator=g)
                b = torch.randn(40, generator=g)
                expected = F.linear(x, w, b)
                _available = bool(torch.allclose(matmul(x, w, b), expected, atol=1e-4))
                try:
                    packed = torch.ops.mkldnn._reorder_linear_weight(w, 16)
                    _packing = bool(torch.allclose(matmul(x, packed, b), expected, atol=1e-4))
                except Exception:
                    _packing = False
        except Exception:  # op missing in this build / changed signature: use the plain ops
            _available = False
    return _available


def pack(weight: torch.Tensor, rows: int) -> torch.Tensor:
    """`weight` (out, in) reordered once into oneDNN's blocked layout, for several `matmul` calls
    with about `rows` input rows each (a plain weight is reordered inside every call: ~10 % of a
    (256 x 128) @ (128 x 14080) product). `weight` itself where packing is unavailable. Only
    when `applies`."""
    return torch.ops.mkldnn._reorder_linear_weight(weight, rows) if _packing else weight


def _cpu_autocast() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled()


def applies(*tensors: torch.Tensor) -> bool:
    """True when the oneDNN kernels may replace the plain ops for these tensors."""
    if not torch.backends.mkldnn.is_available() or not torch.backends.mkldnn.enabled:
        return False
    if any(t.device.type != "cpu" or t.dtype != torch.float32 for t in tensors):
        return False
    if _cpu_autocast():
        return False
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return False  # no autograd formula for the oneDNN op
    return available()


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """`F.linear(x, weight, bias)`, through oneDNN when `applies`."""
    if applies(x, weight, *(() if bias is None else (bias,))):
        return matmul(x, weight, bias)
    return F.linear(x, weight, bias)


def attention(q: torch.Tensor, k: torch.Tensor, v_t: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
    """softmax(q k^T) v for one head, q already scaled: q (L, d), k (S, d), v_t = v^T (d, S) -> (L, d).

    Exact softmax attention, computed `chunk` queries at a time: memory O(chunk * S), never
    the full L x S matrix. Call only when `applies(q, k, v_t)`.
    """
    chunk = chunk or ATTENTION_CHUNK
    out = q.new_empty(q.shape[0], v_t.shape[0])
    k, v_t = pack(k, chunk), pack(v_t, chunk)  # reused by every block of queries
    for start in range(0, q.shape[0], chunk):
        scores = matmul(q[start : start + chunk], k, None)
        out[start : start + chunk] = matmul(torch.softmax(scores, dim=-1), v_t, None)
    return out


# ---------------------------------------------------------------- convolutions


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """A CPU feature map (n, c, h, w) in channels-last memory layout (same values, same shape).

    torch runs CPU convolutions through oneDNN, which is faster on channels-last input (on the dev
    machine, one thread: SPyNet's 7x7 and the 4x head's 3x3 convolutions 1.2-2x, the 64-channel
    3x3 ~1.1x); a convolution keeps its input's layout, so one conversion serves a whole chain.
    Only for inference: with autograd on, oneDNN's channels-last backward is slower (the 4x
    head's 64-channel 3x3 at 128x128: forward + backward 0.38 s against 0.22 s contiguous).
    Other devices: unchanged.
    """
    if x.device.type == "cpu" and x.dim() == 4 and not torch.is_grad_enabled():
        return x.contiguous(memory_format=torch.channels_last)
    return x


def conv1x1(conv: torch.nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """`conv(x)` for a 1x1, stride-1, ungrouped convolution; through oneDNN's matmul when `applies`.

    (With one thread torch sends 1x1 convolutions to its BLAS-based kernel instead of oneDNN.)
    The result is channels-last on that path.
    """
    weight = conv.weight
    if weight.shape[-2:] != (1, 1) or conv.stride != (1, 1) or conv.groups != 1 or conv.padding != (0, 0):
        return conv(x)
    if not applies(x, weight, *(() if conv.bias is None else (conv.bias,))):
        return conv(channels_last(x))
    n, c, h, w = x.shape
    rows = channels_last(x).permute(0, 2, 3, 1).reshape(n * h * w, c)  # a view of the channels-last data
    out = matmul(rows, weight.view(weight.shape[0], c), conv.bias)
    return out.view(n, h, w, -1).permute(0, 3, 1, 2)
