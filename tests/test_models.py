"""The FTVSR network: parity with the published forward, options, checkpoints, errors."""

from __future__ import annotations

import argparse
import json
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import assert_matches_published
from PIL import Image

from ftvsr.data.sample import sample_photo_path
from ftvsr.errors import FTVSRError
from ftvsr.models import (
    FTVSR,
    SPyNet,
    load_model_weights,
    load_official_weights,
    load_released,
    load_spynet_weights,
    onednn,
    read_metadata,
    save_model,
    winograd,
)
from ftvsr.models.classical_flow import ClassicalFlow
from ftvsr.models.ftt import dct_basis, frequency_tokens, frequency_untokens
from ftvsr.models.ftvsr import pad_to_multiple
from ftvsr.models.resample import lanczos_upsample

TINY = dict(mid_channels=16, num_blocks=1, ftt_channels=64, d_model=32, n_heads=2)


def tiny_model(seed: int = 0, **options) -> FTVSR:
    torch.manual_seed(seed)
    return FTVSR(**{**TINY, **options}).eval()


def random_clip(n=1, t=4, h=16, w=20, seed=1) -> torch.Tensor:
    return torch.rand(n, t, 3, h, w, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- parity with the published code


def test_parity_with_published_forward(official, official_pth):
    assert_matches_published(official["config"], official_pth, official["input"], official["output"])


def test_state_dict_names_and_shapes_equal_official_schema(official):
    ours = {name: tuple(t.shape) for name, t in FTVSR(**official["config"]).state_dict().items()}
    assert ours == {name: tuple(shape) for name, shape in official["schema"].items()}


def test_fixed_tensors_equal_ours(official):
    state = FTVSR(**official["config"]).state_dict()
    for name, value in official["fixed"].items():
        assert torch.equal(state[name], value), name
    assert torch.equal(dct_basis(8), official["fixed"]["FTT.dct.dct_conv.weight"][:64])


def test_dct_is_orthonormal_and_inverted():
    model = tiny_model()
    x = torch.rand(2, 3, 32, 40)
    coefficients = model.FTT.dct(x)
    assert coefficients.shape == (2, 192, 4, 5)
    assert torch.allclose(model.FTT.rdct(coefficients), x, atol=1e-5)
    assert torch.allclose(coefficients.square().sum(), x.square().sum(), rtol=1e-5)


def test_published_default_configuration_size():
    model = FTVSR()
    parameters = sum(p.numel() for p in model.parameters())
    in_state_dict = sum(t.numel() for t in model.state_dict().values())
    assert round(in_state_dict / 1e6, 1) == 45.8
    assert 45.7e6 < parameters < 45.9e6
    assert "FTT.ftta.MultiheadAttention.in_proj_weight" in model.state_dict()
    assert len([k for k in model.state_dict() if k.startswith("resblocks.main.2.")]) == 60 * 4


def test_other_sizes_keep_official_names(official):
    official_names = set(official["schema"])
    other = FTVSR(
        mid_channels=32,
        num_blocks=official["config"]["num_blocks"],
        keyframe_stride=5,
        d_model=128,
        n_heads=8,
        ftt_channels=128,
    )
    state = other.state_dict()
    assert set(state) == official_names
    assert state["LTAM.fusion.weight"].shape == (32, 96, 3, 3)
    assert state["FTT.ftta.layer_q.weight"].shape == (128, 128)
    deeper = set(FTVSR(**{**TINY, "num_blocks": 3}).state_dict())
    extra = {f"resblocks.main.2.2.conv{j}.{p}" for j in (1, 2) for p in ("weight", "bias")}
    assert deeper == official_names | extra


# ---------------------------------------------------------------- behaviour


def test_batch_of_two_equals_two_batches_of_one():
    model = tiny_model()
    clip = random_clip(n=2, t=4, h=17, w=21)  # odd sizes: the padding path too
    with torch.no_grad():
        both = model(clip)
        one_by_one = torch.cat([model(clip[:1]), model(clip[1:])])
    assert both.shape == (2, 4, 3, 68, 84)
    assert torch.allclose(both, one_by_one, atol=1e-5)


def test_attention_paths_agree():
    model = tiny_model()
    clip = random_clip(t=3, h=20, w=24)
    with torch.no_grad():
        fast = model(clip)
        model.attention = "materialized"
        reference = model(clip)
    assert torch.allclose(fast, reference, atol=1e-5)
    assert model.config["attention"] == "materialized"


def test_frequency_tokens_round_trip_and_zero_border():
    x = torch.rand(2, 128, 19, 17)
    tokens = frequency_tokens(x)
    assert tokens.shape == (2, 64 * 2 * 2, 2 * 64)
    back = frequency_untokens(tokens, (19, 17))
    assert torch.equal(back[:, :, :16, :16], x[:, :, :16, :16])
    assert back[:, :, 16:].abs().sum() == 0 and back[:, :, :, 16:].abs().sum() == 0


def test_padding_reproduces_published_corner_copy():
    frames = torch.arange(1 * 1 * 1 * 6 * 5, dtype=torch.float32).view(1, 1, 1, 6, 5) + 1
    padded, pad_h, pad_w = pad_to_multiple(frames, 4)
    assert (pad_h, pad_w) == (2, 3) and padded.shape[-2:] == (8, 8)
    assert torch.equal(padded[..., 6:, 5:], frames[..., 4:, 2:])  # corner copies the last rows x columns
    assert padded[..., 6:, :5].abs().sum() == 0 and padded[..., :6, 5:].abs().sum() == 0
    only_w, pad_h, pad_w = pad_to_multiple(frames[..., :4, :], 4)
    assert (pad_h, pad_w) == (0, 3)
    assert torch.equal(only_w[..., :, 5:], frames[..., :4, 2:])  # one side padded: whole strip copied


@pytest.mark.parametrize("base_upsample", ["bilinear", "bicubic", "lanczos"])
def test_zero_init_heads_with_hf_once_outputs_the_upsampled_base(base_upsample):
    model = tiny_model(zero_init_heads=True, hf_once=True, base_upsample=base_upsample)
    clip = random_clip(t=3, h=15, w=18)
    with torch.no_grad():
        out = model(clip)
    if base_upsample == "lanczos":
        base = lanczos_upsample(clip.flatten(0, 1), 4)
    else:
        base = F.interpolate(clip.flatten(0, 1), scale_factor=4, mode=base_upsample, align_corners=False)
    assert torch.equal(out, base.view_as(out))


def test_lanczos_upsample_is_pillows_lanczos():
    # a smooth RGB frame: Pillow rounds and clips to 8 bits after its first pass, so noise would
    # differ by its overshoots; on smooth natural content the two agree to a grey level
    photo = Image.open(sample_photo_path("chelsea")).convert("RGB").resize((45, 30), Image.Resampling.BOX)
    expected = np.asarray(photo.resize((180, 120), Image.Resampling.LANCZOS)).astype(np.float64)
    frame = torch.from_numpy(np.array(photo)).permute(2, 0, 1)[None].double() / 255
    ours = lanczos_upsample(frame, 4)[0].permute(1, 2, 0).numpy() * 255
    difference = np.abs(np.clip(np.round(ours), 0, 255) - expected)
    assert difference.mean() < 0.5 and difference.max() <= 1
    assert ours.shape == expected.shape
    # the taps outside the frame are dropped and the rest renormalised: a flat frame stays flat
    flat = lanczos_upsample(torch.full((1, 1, 5, 7), 0.25), 4)
    assert flat.shape == (1, 1, 20, 28) and torch.allclose(flat, torch.tensor(0.25))


def test_published_output_counts_first_stage_twice():
    model = tiny_model(zero_init_heads=True)  # hf_once=False: rdct(dct(x)) + x
    clip = random_clip(t=2)
    with torch.no_grad():
        out = model(clip)
    base = F.interpolate(clip.flatten(0, 1), scale_factor=4, mode="bilinear", align_corners=False)
    assert torch.allclose(out, 2 * base.view_as(out), atol=1e-5)


def test_zero_flow_never_calls_spynet(monkeypatch):
    model = tiny_model(flow="zero")
    assert isinstance(model.spynet, SPyNet)

    def refuse(*args, **kwargs):
        raise AssertionError("SPyNet called with flow='zero'")

    monkeypatch.setattr(model.spynet, "forward", refuse)
    with torch.no_grad():
        out = model(random_clip(t=3))
    assert out.shape == (1, 3, 3, 64, 80) and torch.isfinite(out).all()


def test_classical_flow_replaces_spynet_and_keeps_the_state_dict():
    model = tiny_model(flow="classical")
    assert model.state_dict().keys() == tiny_model(flow="zero").state_dict().keys()
    assert isinstance(model.classical_flow, ClassicalFlow)
    flows = []
    original = model.classical_flow.forward

    def record(ref, supp):
        flows.append(original(ref, supp))
        return flows[-1]

    model.spynet.forward = lambda *a, **k: (_ for _ in ()).throw(AssertionError("SPyNet called"))
    model.classical_flow.forward = record
    # the camera pans right by 2 LR pixels a frame: content moves left, the flows to the next frame say dx = -2
    scene = torch.rand(1, 3, 24, 40, generator=torch.Generator().manual_seed(3))
    scene = F.avg_pool2d(F.interpolate(scene, scale_factor=2, mode="bilinear"), 3, 1, 1)
    clip = torch.stack([scene[..., 4:20, 2 * k : 2 * k + 32] for k in range(3)], 1)
    with torch.no_grad():
        moving = model(clip)
    assert len(flows) == 2  # once on the LR clip, once on the first-stage output
    to_next = flows[0][2:]  # second half of the pairs: frame i -> i + 1
    assert torch.median(to_next[:, 0, 4:-4, 4:-4]).item() == pytest.approx(-2.0, abs=0.2)
    with torch.no_grad():
        still = tiny_model(flow="zero")(clip)
    assert not torch.allclose(moving, still)


def test_single_frame_clip():
    with torch.no_grad():
        out = tiny_model()(random_clip(t=1))
    assert out.shape == (1, 1, 3, 64, 80)


def test_gradients_reach_every_trainable_parameter():
    model = tiny_model().train()
    model.spynet.requires_grad_(False)  # the trainer freezes SPyNet; it must stay a submodule
    model(random_clip(t=3)).mean().backward()
    missing = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing


# ---------------------------------------------------------------- CPU inference kernels

needs_onednn = pytest.mark.skipif(not onednn.available(), reason="oneDNN matmul op not in this torch build")


@needs_onednn
@pytest.mark.parametrize("n, h, w", [(1, 9, 13), (2, 12, 8), (1, 3, 5)])
def test_winograd_convolution_equals_direct(n, h, w):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(256, 260, 3, padding=1)
    x = onednn.channels_last(torch.randn(n, 256, h, w))
    with torch.no_grad():
        assert winograd.applies(conv, x)
        out = winograd.conv3x3(conv, x)
        exact = F.conv2d(x.double(), conv.weight.double(), conv.bias.double(), padding=1)
    assert out.shape == exact.shape and out.is_contiguous(memory_format=torch.channels_last)
    assert (out - exact).abs().max() <= 1e-3 * exact.abs().mean()  # rounding only (observed ~1.5e-4)
    assert not winograd.applies(conv, x)  # grad enabled, trainable weights: the plain convolution
    assert not winograd.applies(torch.nn.Conv2d(64, 64, 3, padding=1), x[:, :64])  # narrow: direct


@needs_onednn
def test_onednn_attention_and_products_equal_plain_ops():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(300, 16, generator=g) / 4
    k, v = torch.randn(270, 16, generator=g), torch.randn(270, 16, generator=g)
    with torch.no_grad():
        out = onednn.attention(q, k, v.t().contiguous(), chunk=64)  # 300 queries: a partial last block
        expected = F.scaled_dot_product_attention(q[None], k[None], v[None], scale=1.0)[0]
        assert torch.allclose(out, expected, atol=1e-5)
        conv = torch.nn.Conv2d(24, 40, 1)
        x = torch.randn(2, 24, 5, 7, generator=g)
        assert torch.allclose(onednn.conv1x1(conv, x), conv(x), atol=1e-5)
        weight, bias = torch.randn(40, 24, generator=g), torch.randn(40, generator=g)
        assert torch.allclose(
            onednn.linear(x.flatten(2).transpose(1, 2), weight, bias),
            F.linear(x.flatten(2).transpose(1, 2), weight, bias),
            atol=1e-5,
        )


@needs_onednn
def test_cpu_inference_kernels_equal_the_plain_forward(monkeypatch):
    calls = []
    conv3x3 = winograd.conv3x3
    monkeypatch.setattr(winograd, "conv3x3", lambda conv, x: calls.append(1) or conv3x3(conv, x))
    model = tiny_model(ftt_channels=256)  # wide enough for Winograd
    clip = random_clip(t=3, h=20, w=24)
    with torch.no_grad():
        fast = model(clip)
        assert calls  # Winograd, oneDNN attention and products ran
        enabled, torch.backends.mkldnn.enabled = torch.backends.mkldnn.enabled, False
        try:
            plain = model(clip)  # F.conv2d, F.linear, scaled_dot_product_attention
        finally:
            torch.backends.mkldnn.enabled = enabled
    assert torch.allclose(fast, plain, atol=1e-5)

    calls.clear()
    model.train()
    model(clip[:, :2]).mean().backward()  # training: autograd-capable plain ops only
    assert not calls and model.FTT.resblocks.main[0].weight.grad is not None


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "shape, words",
    [
        ((1, 3, 16, 20), "(n, t, 3, h, w)"),
        ((1, 2, 1, 16, 20), "3 (RGB) channels"),
        ((1, 2, 3, 14, 20), "at least 15 pixels"),
    ],
)
def test_bad_input_raises_clear_error(shape, words):
    with pytest.raises(FTVSRError, match=words.replace("(", r"\(").replace(")", r"\)")):
        tiny_model()(torch.rand(*shape))


def test_bad_configuration_raises():
    with pytest.raises(FTVSRError, match="multiple of 64"):
        FTVSR(**{**TINY, "ftt_channels": 100})
    with pytest.raises(FTVSRError, match="divisible by n_heads"):
        FTVSR(**{**TINY, "d_model": 30, "n_heads": 4})
    with pytest.raises(FTVSRError, match="flow must be one of"):
        FTVSR(**TINY, flow="raft")
    with pytest.raises(FTVSRError, match="stride must be a multiple of 4"):
        FTVSR(**TINY, stride=3)
    with pytest.raises(FTVSRError, match="hr_channels must be an integer >= 1"):
        FTVSR(**TINY, hr_channels=0)


def test_hr_channels_sets_the_width_of_the_4x_head_only():
    published = tiny_model()
    narrow = tiny_model(hr_channels=8)
    assert published.conv_hr.weight.shape == (64, 64, 3, 3)  # the published width, whatever mid_channels
    assert narrow.upsample2.upsample_conv.weight.shape == (8 * 4, 16, 3, 3)
    assert narrow.conv_hr.weight.shape == (8, 8, 3, 3)
    assert narrow.conv_last.weight.shape == (3, 8, 3, 3)
    head = ("upsample2", "conv_hr", "conv_last")
    others = {k: v.shape for k, v in narrow.state_dict().items() if not k.startswith(head)}
    assert others == {k: v.shape for k, v in published.state_dict().items() if k in others}
    clip = random_clip(t=2)
    with torch.no_grad():
        assert narrow(clip).shape == (1, 2, 3, 64, 80)


# ---------------------------------------------------------------- released checkpoints


def test_official_checkpoint_with_wrong_names_lists_them(official, synth_weights, tmp_path):
    checkpoint = synth_weights.official_checkpoint(official["schema"], official["fixed"])
    state = checkpoint["state_dict"]
    del state["generator.conv_last.bias"]
    state["generator.extra.weight"] = torch.zeros(1)
    state["generator.fusion.weight"] = torch.zeros(64, 192, 3, 3)
    path = tmp_path / "broken.pth"
    torch.save(checkpoint, path)
    with pytest.raises(FTVSRError) as err:
        load_official_weights(FTVSR(**official["config"]), path)
    message = str(err.value)
    assert "missing 1 (conv_last.bias)" in message
    assert "unexpected 1 (extra.weight)" in message
    assert "mis-shaped 1 (fusion.weight (64, 192, 3, 3) != (64, 192, 1, 1))" in message


def test_official_loader_ignores_restorer_buffers(official, synth_weights, tmp_path):
    checkpoint = synth_weights.official_checkpoint(official["schema"], official["fixed"])
    checkpoint["state_dict"]["step_counter"] = torch.zeros(1)  # mmedit's TTVSR restorer buffer
    path = tmp_path / "with_counter.pth"
    torch.save(checkpoint, path)
    load_official_weights(FTVSR(**official["config"]), path)


def test_unsafe_checkpoint_is_refused_not_loaded_unsafely(tmp_path):
    path = tmp_path / "pickled.pth"
    torch.save({"state_dict": {}, "meta": argparse.Namespace(a=1)}, path)
    with pytest.raises(FTVSRError, match="weights_only=True"):
        load_official_weights(tiny_model(), path)


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(FTVSRError, match="not found"):
        load_official_weights(tiny_model(), tmp_path / "nope.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(FTVSRError, match=re.escape("garbage.pth")):
        load_official_weights(tiny_model(), garbage)


def test_spynet_weights_in_mmedit_naming(tmp_path):
    torch.manual_seed(3)
    source = SPyNet()
    convs = {k: v for k, v in source.state_dict().items() if k not in ("mean", "std")}
    assert len(convs) == 60 and "basic_module.5.basic_module.4.conv.bias" in convs
    path = tmp_path / "spynet_20210409-c6c1bd09.pth"
    torch.save({"meta": {}, "state_dict": convs}, path)
    target = tiny_model().spynet
    load_spynet_weights(target, path)
    for name, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[name], value), name
    del convs["basic_module.0.basic_module.0.conv.weight"]
    torch.save(convs, path)
    with pytest.raises(FTVSRError, match="missing 1"):
        load_spynet_weights(target, path)


# ---------------------------------------------------------------- own checkpoints


def test_save_and_rebuild_from_checkpoint(tmp_path):
    model = tiny_model(seed=5, hf_once=True, flow="zero", base_upsample="bicubic", hr_channels=16)
    path = save_model(model, tmp_path / "model.pt", metadata={"step": 7, "note": "tiny"})
    assert not list(tmp_path.glob(".*.tmp"))
    rebuilt = FTVSR.from_checkpoint(path)
    assert rebuilt.config == model.config
    json.dumps(rebuilt.config)
    clip = random_clip(t=2)
    with torch.no_grad():
        assert torch.equal(rebuilt(clip), model(clip))
    assert read_metadata(path)["step"] == 7
    assert torch.load(path, weights_only=True)["config"]["flow"] == "zero"
    assert rebuilt.conv_hr.weight.shape == (16, 16, 3, 3)


def test_checkpoint_of_another_size_names_mismatches(tmp_path):
    path = save_model(tiny_model(), tmp_path / "tiny.pt")
    first = r"feat_extractor\.main\.0\.weight \(16, 3, 3, 3\) != \(32, 3, 3, 3\)"
    with pytest.raises(FTVSRError, match=rf"mis-shaped 35 \({first}"):
        load_model_weights(FTVSR(**{**TINY, "mid_channels": 32}), path)
    with pytest.raises(FTVSRError, match=r"unexpected 4 \(resblocks\.main\.2\.0\.conv1\.weight"):
        load_model_weights(FTVSR(**{**TINY, "num_blocks": 0}), path)


def test_from_checkpoint_refuses_released_format(official, synth_weights, tmp_path):
    path = tmp_path / "FTVSR_REDS.pth"
    torch.save(synth_weights.official_checkpoint(official["schema"], official["fixed"]), path)
    with pytest.raises(FTVSRError, match="load_official_weights"):
        FTVSR.from_checkpoint(path)


def test_load_released_builds_the_published_configuration(tmp_path):
    published = FTVSR(keyframe_stride=1)  # FTVSR_Vimeo90K.pth's configuration
    path = tmp_path / "FTVSR_Vimeo90K.pth"
    torch.save({"meta": {}, "state_dict": {f"generator.{k}": v for k, v in published.state_dict().items()}}, path)
    model = load_released(path, "vimeo90k")
    assert model.config["keyframe_stride"] == 1 and not model.training
    assert all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(), published.state_dict().values(), strict=True)
    )
    with pytest.raises(FTVSRError, match="released checkpoints exist for"):
        load_released(path, "vid4")


def test_published_default_configuration_runs_a_batch_of_two():
    model = FTVSR().eval()  # 60 blocks, FTT width 512: the published network
    with torch.no_grad():
        out = model(random_clip(n=2, t=2, h=16, w=16))
    assert out.shape == (2, 2, 3, 64, 64) and torch.isfinite(out).all()
