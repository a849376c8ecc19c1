"""PRNet network: TF 'SAME' convolutions, stage shapes, parameter count, TF weight layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.prnet import (
    MAP_SCALE,
    Conv2dSame,
    ConvTranspose2dSame,
    PRNet,
    count_parameters,
    export_tf_weights,
    load_tf_weights,
    output_to_pixels,
    pixels_to_target,
    same_padding,
    stage_sizes,
    tf_variable_map,
    use_channels_last_convs,
)


def _conv_with_ones(k: int, stride: int) -> torch.Tensor:
    conv = Conv2dSame(1, 1, k, stride)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    return conv


def test_same_padding_rule() -> None:
    assert same_padding(256, 4, 1) == (1, 2, 256)  # even kernel, stride 1: extra at bottom/right
    assert same_padding(256, 4, 2) == (1, 1, 128)
    assert same_padding(256, 1, 2) == (0, 0, 128)
    assert same_padding(7, 3, 2) == (1, 1, 4)
    assert same_padding(8, 3, 2) == (0, 1, 4)


def test_same_conv_hand_computed_k2() -> None:
    x = torch.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    y = _conv_with_ones(2, 1)(x)[0, 0]
    expected = torch.tensor([[12.0, 16.0, 9.0], [24.0, 28.0, 15.0], [15.0, 17.0, 9.0]])
    assert torch.equal(y, expected)


def test_same_conv_hand_computed_k4_asymmetric() -> None:
    # 4x4 kernel of ones on 4x4 ones: rows i-1..i+2 clipped to 0..3 -> counts 3,4,3,2 per axis.
    y = _conv_with_ones(4, 1)(torch.ones(1, 1, 4, 4))[0, 0]
    c = torch.tensor([3.0, 4.0, 3.0, 2.0])
    assert torch.equal(y, torch.outer(c, c))
    y2 = _conv_with_ones(4, 2)(torch.ones(1, 1, 4, 4))[0, 0]
    assert torch.equal(y2, torch.full((2, 2), 9.0))


@pytest.mark.parametrize("n", [5, 8])
@pytest.mark.parametrize("k", [1, 3, 4, 5])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_transposed_conv_is_vjp_of_same_conv(n: int, k: int, stride: int) -> None:
    torch.manual_seed(n * 100 + k * 10 + stride)
    cin, cout = 3, 2  # of the forward conv; the transposed conv maps cout -> cin
    conv = Conv2dSame(cin, cout, k, stride).double()
    tconv = ConvTranspose2dSame(cout, cin, k, stride).double()
    with torch.no_grad():
        tconv.weight.copy_(conv.weight)
    x = torch.randn(2, cin, n * stride, n * stride, dtype=torch.float64, requires_grad=True)
    y = conv(x)
    assert y.shape[-2:] == (n, n)
    g = torch.randn_like(y)
    (vjp,) = torch.autograd.grad(y, x, g)
    out = tconv(g)
    assert out.shape == x.shape
    torch.testing.assert_close(out, vjp, rtol=1e-12, atol=1e-12)


def test_parameter_count_width16() -> None:
    model = PRNet(width=16)
    assert count_parameters(model) == 13_353_618
    assert count_parameters(model.stem) == 800
    assert count_parameters(model.encoder) == 3_587_072
    assert count_parameters(model.decoder) == 9_765_746
    bn = sum(
        p.numel() for name, p in model.named_parameters() if ".bn." in name or name.startswith("bn")
    )
    assert bn == 11_890  # gamma + beta of every batch norm
    assert all(not name.endswith("bias") or ".bn." in name for name, _ in model.named_parameters())


def test_block_structure() -> None:
    model = PRNet(width=16)
    assert [type(b.shortcut).__name__ for b in model.encoder] == ["Conv2dSame", "Identity"] * 5
    assert [b.conv2.conv.stride for b in model.encoder] == [2, 1] * 5
    widths = [u.conv.weight.shape[1] for u in model.decoder]
    assert widths == [512, 256, 256, 256, 128, 128, 128, 64, 64, 64, 32, 32, 16, 16, 3, 3, 3]
    assert isinstance(model.decoder[-1].act, torch.nn.Sigmoid)


def test_stage_shapes_256() -> None:
    torch.manual_seed(0)
    model = PRNet(width=16, in_size=256).eval()
    shapes: list[tuple[int, ...]] = []
    modules = [model.stem, *model.encoder, *model.decoder]
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape)))
        for m in modules
    ]
    x = torch.rand(1, 3, 256, 256).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        out = model(x)
    for h in hooks:
        h.remove()
    enc_c = [16, 32, 32, 64, 64, 128, 128, 256, 256, 512, 512]
    dec_c = [512, 256, 256, 256, 128, 128, 128, 64, 64, 64, 32, 32, 16, 16, 3, 3, 3]
    sizes = stage_sizes(256)
    expected = [(1, c, s, s) for c, s in zip(enc_c + dec_c, sizes)]
    assert shapes == expected
    assert shapes[10] == (1, 512, 8, 8)
    assert out.shape == (1, 3, 256, 256)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_bad_sizes_rejected() -> None:
    with pytest.raises(ValueError):
        PRNet(in_size=250)
    with pytest.raises(ValueError):
        PRNet(width=16)(torch.zeros(1, 1, 64, 64))


def test_map_scale_helpers() -> None:
    assert pytest.approx(281.6) == MAP_SCALE
    t = torch.tensor([0.0, 0.5, 1.0])
    torch.testing.assert_close(pixels_to_target(output_to_pixels(t)), t)


def test_tf_weight_round_trip_small() -> None:
    torch.manual_seed(1)
    src, dst = PRNet(width=2, in_size=32), PRNet(width=2, in_size=32)
    with torch.no_grad():
        for bn in (m for m in src.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.1, 0.1)
            bn.running_var.uniform_(0.5, 1.5)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.1, 0.1)
    tf = export_tf_weights(src)
    assert tf["resfcn256/Conv/weights"].shape == (4, 4, 3, 2)  # HWIO
    assert tf["resfcn256/Conv2d_transpose/weights"].shape == (4, 4, 64, 64)
    assert tf["resfcn256/Conv2d_transpose_16/weights"].shape == (4, 4, 3, 3)
    assert tf["resfcn256/Conv2d_transpose_1/weights"].shape == (4, 4, 32, 64)  # (kh, kw, out, in)
    assert (
        "resfcn256/resBlock/shortcut/weights" in tf
        and "resfcn256/resBlock_1/shortcut/weights" not in tf
    )
    assert "resfcn256/resBlock_9/BatchNorm/moving_variance" in tf
    load_tf_weights(dst, {k + ":0": v for k, v in tf.items()})
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(dst.eval()(x), src.eval()(x))
    n_tensors = len(tf_variable_map(src))
    assert n_tensors == len(tf)
    with pytest.raises(KeyError):
        load_tf_weights(dst, {k: v for k, v in list(tf.items())[1:]})


def test_tf_kernel_layout_matches_tf_conv_semantics() -> None:
    """A TF HWIO kernel loaded with transpose(3, 2, 0, 1) computes
    out[o] = sum_i,h,w x[i] * W[h, w, i, o]."""
    rng = np.random.default_rng(0)
    w_tf = rng.standard_normal((4, 4, 3, 5))
    x = rng.standard_normal((1, 3, 6, 6))
    conv = Conv2dSame(3, 5, 4, 1).double()
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(w_tf.transpose(3, 2, 0, 1)))
    y = conv(torch.from_numpy(x))[0].detach().numpy()
    padded = np.pad(x[0], ((0, 0), (1, 2), (1, 2)))
    direct = np.einsum("ihw,hwio->o", padded[:, 2:6, 3:7], w_tf)
    np.testing.assert_allclose(y[:, 2, 3], direct, rtol=1e-12)


def test_channels_last_matches_and_backward_runs() -> None:
    torch.manual_seed(3)
    model = PRNet(width=4, in_size=64)
    x = torch.rand(2, 3, 64, 64)
    target = torch.rand(2, 3, 64, 64)
    out = model(x)
    ((out - target) ** 2).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    with torch.no_grad():
        ref = model(x)
        cl = model.to(memory_format=torch.channels_last)(
            x.contiguous(memory_format=torch.channels_last)
        )
    torch.testing.assert_close(cl, ref, rtol=1e-4, atol=1e-5)


def test_net_size_runs_smaller_and_round_trips(tmp_path) -> None:
    from model.checkpoint import load_weights, save_weights

    torch.manual_seed(0)
    model = PRNet(width=2, in_size=64, net_size=32).eval()
    x = torch.rand(2, 3, 64, 64)
    y = model(x)
    assert y.shape == (2, 3, 64, 64) and float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    # the layers see the 32x32 resize: the same output as resizing by hand and upsampling back
    small = torch.nn.functional.interpolate(
        x, size=(32, 32), mode="bilinear", align_corners=False, antialias=True
    )
    inner = model.decoder(model.encoder(model.stem(small)))
    ref = torch.nn.functional.interpolate(
        inner, size=(64, 64), mode="bilinear", align_corners=False
    )
    assert torch.allclose(y, ref)
    save_weights(tmp_path / "m.pt", model)
    back = load_weights(tmp_path / "m.pt")
    assert back.net_size == 32 and torch.equal(back(x), y)
    with pytest.raises(ValueError):
        PRNet(width=2, in_size=64, net_size=48)
    with pytest.raises(ValueError):
        PRNet(width=2, in_size=64, net_size=128)


def test_channels_last_convs_same_function_and_gradients() -> None:
    """CPU training's layout (convs channels-last, the rest standard): the same outputs and
    gradients as the standard layout, strided 1x1 shortcuts included (their channels-last
    backward crashed in torch 2.13 on the CPU), and the outputs come back in the standard layout.
    In float64: in float32 train-mode batch norm over near-constant channels of an untrained net
    magnifies the different rounding (up to 4e-4 on the [0, 1] output, 0 in eval mode)."""
    torch.manual_seed(0)
    ref_net = PRNet(width=4, in_size=64, net_size=32, template=True).double().train()
    island_net = PRNet(width=4, in_size=64, net_size=32, template=True).double().train()
    island_net.load_state_dict(ref_net.state_dict())
    use_channels_last_convs(island_net)
    x = torch.rand(3, 3, 64, 64, dtype=torch.float64)
    y_ref, y = ref_net(x), island_net(x)
    assert y.is_contiguous()
    torch.testing.assert_close(y, y_ref, rtol=1e-9, atol=1e-9)
    (y_ref**2).sum().backward()
    (y**2).sum().backward()
    for (name, a), b in zip(ref_net.named_parameters(), island_net.parameters()):
        scale = float(a.grad.abs().max())  # train-mode gradients here reach 1e5
        assert float((b.grad - a.grad).abs().max()) <= 1e-8 * scale, name
    use_channels_last_convs(island_net, enabled=False)
    assert not any(getattr(m, "channels_last_island", False) for m in island_net.modules())


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_strided_1x1_conv_reads_every_stride_th_pixel(stride: int) -> None:
    conv = Conv2dSame(2, 3, 1, stride)
    x = torch.rand(1, 2, 7, 8)
    ref = torch.nn.functional.conv2d(x, conv.weight, stride=stride)  # SAME pads a 1x1 by nothing
    torch.testing.assert_close(conv(x), ref)
