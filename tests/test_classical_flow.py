"""ClassicalFlow (coarse-to-fine Horn–Schunck): known sub-pixel translations of a smooth random
texture are recovered, warping with the flow aligns the frames, and the module keeps SPyNet's
interface (shapes, dtype, device, batching, no parameters)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

from ftvsr.models.classical_flow import ClassicalFlow, pyramid_levels
from ftvsr.models.spynet import clip_flows, flow_warp

MARGIN = 8  # interior = the frame less this many pixels: beyond the largest shift, where `supp` is padding


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Small tensors, shared cores: one torch thread is both fastest and fair to other tests."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def smooth_texture(h: int, w: int, seed: int = 0, sigma: float = 1.5) -> torch.Tensor:
    """(1, 3, h, w) Gaussian-blurred uniform noise, mean 0.5, contrast 0.15: texture everywhere."""
    generator = torch.Generator().manual_seed(seed)
    radius = int(3 * sigma) + 1
    noise = torch.rand(1, 3, h + 2 * radius, w + 2 * radius, generator=generator)
    taps = torch.exp(-(torch.arange(-radius, radius + 1, dtype=torch.float32) ** 2) / (2 * sigma**2))
    taps = taps / taps.sum()
    blurred = F.conv2d(noise, taps.view(1, 1, 1, -1).repeat(3, 1, 1, 1), groups=3)
    blurred = F.conv2d(blurred, taps.view(1, 1, -1, 1).repeat(3, 1, 1, 1), groups=3)
    return ((blurred - blurred.mean()) / blurred.std() * 0.15 + 0.5).clamp(0, 1)


def translated_pair(h: int, w: int, dx: float, dy: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(ref, supp) with supp(x, y) = ref(x - dx, y - dy): the flow from ref to supp is (dx, dy) everywhere."""
    ref = smooth_texture(h, w, seed)
    shift = torch.tensor([-dx, -dy]).view(1, 1, 1, 2).expand(1, h, w, 2)
    return ref, flow_warp(ref, shift, padding_mode="border")


def interior(x: torch.Tensor) -> torch.Tensor:
    return x[..., MARGIN:-MARGIN, MARGIN:-MARGIN]


def interior_median(flow: torch.Tensor) -> torch.Tensor:
    """(1, 2, h, w) -> (2,): the median (dx, dy) over the interior."""
    return interior(flow)[0].flatten(1).median(1).values


SIZES = [(64, 64), (37, 45)]  # square, and odd non-square (pyramid levels of odd sizes)
SHIFTS = [(1.3, -0.6), (-3.5, 2.5)]  # sub-pixel, and larger than the finest level's linearisation reaches


@pytest.mark.parametrize(("h", "w"), SIZES)
@pytest.mark.parametrize(("dx", "dy"), SHIFTS)
def test_recovers_translation(h: int, w: int, dx: float, dy: float) -> None:
    ref, supp = translated_pair(h, w, dx, dy)
    flow = ClassicalFlow()(ref, supp)
    median = interior_median(flow)
    assert torch.allclose(median, torch.tensor([dx, dy]), atol=0.15), median


def test_large_translation_needs_the_pyramid() -> None:
    """On the full-size frames alone the 3.5 px shift is out of reach: the coarse levels find it."""
    ref, supp = translated_pair(64, 64, -3.5, 2.5)
    single_level = interior_median(ClassicalFlow(levels=1)(ref, supp))
    assert (single_level - torch.tensor([-3.5, 2.5])).abs().max() > 1.0


@pytest.mark.parametrize(("h", "w"), SIZES)
@pytest.mark.parametrize(("dx", "dy"), SHIFTS)
def test_warping_with_the_flow_aligns(h: int, w: int, dx: float, dy: float) -> None:
    ref, supp = translated_pair(h, w, dx, dy, seed=1)
    flow = ClassicalFlow()(ref, supp)
    aligned = flow_warp(supp, flow.permute(0, 2, 3, 1), padding_mode="border")
    error_aligned = interior(aligned - ref).abs().mean()
    error_unaligned = interior(supp - ref).abs().mean()
    assert error_aligned <= 0.5 * error_unaligned, (error_aligned, error_unaligned)


def test_identical_frames_give_zero_flow() -> None:
    frames = smooth_texture(36, 44)
    flow = ClassicalFlow()(frames, frames.clone())
    assert flow.abs().max() < 1e-4  # not exactly 0: flow_warp resamples with rounding


def test_interface_matches_spynet() -> None:
    model = ClassicalFlow()
    assert list(model.parameters()) == []
    assert model.state_dict() == {}  # nothing to save or load
    ref = smooth_texture(33, 20).requires_grad_()
    supp = smooth_texture(33, 20, seed=1)
    flow = model(ref, supp)
    assert flow.shape == (1, 2, 33, 20)
    assert flow.dtype == ref.dtype and flow.device == ref.device
    assert not flow.requires_grad
    assert model(ref.double(), supp.double()).dtype == torch.float64
    with pytest.raises(ValueError, match="must both be"):
        model(ref, supp[:, :, :-1])


def test_batched_equals_one_by_one_and_deterministic() -> None:
    model = ClassicalFlow()
    pairs = [translated_pair(37, 45, dx, dy, seed=k) for k, (dx, dy) in enumerate([*SHIFTS, (0.4, 0.9)])]
    refs = torch.cat([ref for ref, _ in pairs])
    supps = torch.cat([supp for _, supp in pairs])
    batched = model(refs, supps)
    one_by_one = torch.cat([model(ref, supp) for ref, supp in pairs])
    assert torch.allclose(batched, one_by_one, atol=1e-5)
    assert torch.equal(model(refs, supps), batched)


@pytest.mark.parametrize(("h", "w"), [(1, 1), (2, 9), (5, 7), (17, 33)])
def test_tiny_and_odd_sizes(h: int, w: int) -> None:
    ref, supp = torch.rand(2, 3, h, w), torch.rand(2, 3, h, w)
    flow = ClassicalFlow()(ref, supp)
    assert flow.shape == (2, 2, h, w)
    assert torch.isfinite(flow).all()


def test_pyramid_levels() -> None:
    assert pyramid_levels(36, 44, None, 8) == 4  # 36, 18, 9, 4: halve while the short side is above 8
    assert pyramid_levels(32, 32, None, 8) == 3  # 32, 16, 8
    assert pyramid_levels(180, 320, None, 8) == 6  # ..., 11, 5
    assert pyramid_levels(64, 64, 2, 8) == 2
    assert pyramid_levels(5, 40, 6, 8) == 2  # capped: no level under 2 px
    assert pyramid_levels(1, 1, None, 8) == 1


def test_swaps_in_for_spynet_in_clip_flows() -> None:
    first, second = translated_pair(36, 44, 1.0, 0.5)
    frames = torch.stack((first, second), 1)  # (1, 2, 3, h, w)
    to_previous, to_next = clip_flows(ClassicalFlow(), frames)
    assert to_previous.shape == to_next.shape == (1, 1, 2, 36, 44)
    # frame 1 is frame 0 moved by (1, 0.5): from 0 to 1 the flow is (1, 0.5), from 1 to 0 its opposite
    assert torch.allclose(interior_median(to_next[:, 0]), torch.tensor([1.0, 0.5]), atol=0.15)
    assert torch.allclose(interior_median(to_previous[:, 0]), torch.tensor([-1.0, -0.5]), atol=0.15)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu() -> None:
    ref, supp = translated_pair(37, 45, 1.3, -0.6)
    model = ClassicalFlow()
    on_cpu = model(ref, supp)
    on_gpu = model.cuda()(ref.cuda(), supp.cuda())
    assert on_gpu.device.type == "cuda"
    assert torch.allclose(on_gpu.cpu(), on_cpu, atol=1e-3)
