"""PRNet's encoder-decoder ("resfcn256"), layer for layer as the authors' TensorFlow code builds it.

Input: an RGB crop, float (B, 3, H, W) with values in [0, 1] (the uint8 crop divided by 255).
Output: a sigmoid (B, 3, H, W) in [0, 1]; the UV position map in crop pixels is
``output * map_scale(S)`` (PRNet's ``MaxPos = S * 1.1`` for S x S crops; ``MAP_SCALE = 256 * 1.1``),
channels x (right), y (down), z (depth).

Architecture at ``width`` w (w = 16 in the paper):

* stem: 4x4 conv, stride 1, to w channels, BN + ReLU;
* ten residual blocks, kernel 4, channels 2w,2w,4w,4w,8w,8w,16w,16w,32w,32w with strides
  2,1,2,1,2,1,2,1,2,1 (256x256 -> 8x8x512 at w = 16). A block computes
  ``relu(bn(shortcut(x) + conv1x1(relu(bn(convkxk_s(relu(bn(conv1x1(x)))))))))``; the inner
  convolutions have c/2 channels, the last 1x1 conv has neither normalisation nor activation and the
  shortcut is a plain strided 1x1 conv where stride or width change (identity otherwise);
* seventeen 4x4 transposed convs, channels 32w,16w,16w,16w,8w,8w,8w,4w,4w,4w,2w,2w,w,w,3,3,3 with
  strides 1,2,1,1,2,1,1,2,1,1,2,1,2,1,1,1,1, each followed by BN + ReLU, the last by BN + sigmoid.

No layer has a bias. Batch norm has both scale (gamma) and offset (beta), eps = 1e-3 and
running-average decay 0.999 (= PyTorch momentum 0.001), TensorFlow's ``tcl.batch_norm`` defaults.
Weights are Glorot-uniform initialised (TensorFlow's default).

Padding is TensorFlow's 'SAME': a conv of stride s outputs ceil(n / s) and pads
``max((out - 1) * s + k - n, 0)`` in total, the odd one extra at the bottom/right (a 4x4 stride-1
conv pads 1 top/left and 2 bottom/right). A 'SAME' transposed conv outputs n * s and is exactly the
gradient (vector-Jacobian product) of that SAME conv, which is how TensorFlow defines it.

Weight layout (TensorFlow -> PyTorch): a conv kernel is HWIO ``(kh, kw, in, out)`` in TensorFlow and
OIHW ``(out, in, kh, kw)`` here; a transposed-conv kernel is ``(kh, kw, out, in)`` in TensorFlow
(the HWIO kernel of the conv it is the gradient of) and ``(in, out, kh, kw)`` here. Both map by
``np.transpose(w, (3, 2, 0, 1))``; no spatial flip. See :func:`load_tf_weights`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def map_scale(in_size: int = 256) -> float:
    """Crop pixels per unit of the network's [0, 1] output for S x S crops: ``S * 1.1`` (PRNet's
    ``MaxPos``), so a map may reach 10 % beyond the crop."""
    return in_size * 1.1


MAP_SCALE: float = map_scale(256)
"""Network output (sigmoid, [0, 1]) times this = position map in crop pixels (256 x 256 crops)."""

ENCODER_MULTIPLES: tuple[int, ...] = (2, 2, 4, 4, 8, 8, 16, 16, 32, 32)
ENCODER_STRIDES: tuple[int, ...] = (2, 1, 2, 1, 2, 1, 2, 1, 2, 1)
DECODER_MULTIPLES: tuple[int, ...] = (32, 16, 16, 16, 8, 8, 8, 4, 4, 4, 2, 2, 1, 1)
DECODER_STRIDES: tuple[int, ...] = (1, 2, 1, 1, 2, 1, 1, 2, 1, 1, 2, 1, 2, 1, 1, 1, 1)
KERNEL = 4
BN_EPS = 1e-3
BN_MOMENTUM = 1e-3  # = 1 - TensorFlow's decay 0.999
TF_SCOPE = "resfcn256"


def output_to_pixels(output: torch.Tensor, scale: float = MAP_SCALE) -> torch.Tensor:
    """Network output in [0, 1] -> position map in crop pixels (``scale``: :func:`map_scale`)."""
    return output * scale


def pixels_to_target(map_px: torch.Tensor, scale: float = MAP_SCALE) -> torch.Tensor:
    """Position map in crop pixels -> training target on the network's [0, 1] scale."""
    return map_px / scale


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """TensorFlow 'SAME' padding of one axis: (pad_before, pad_after, output_size)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


class _SameConv(nn.Module):
    """A bias-free (transposed) conv with TensorFlow 'SAME' semantics: ``kernel_size``,
    ``stride`` and a Xavier-uniform ``weight``, (out, in, k, k), or (in, out, k, k) when
    ``TRANSPOSED``."""

    TRANSPOSED = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride
        pair = (in_channels, out_channels) if self.TRANSPOSED else (out_channels, in_channels)
        self.weight = nn.Parameter(torch.empty(*pair, kernel_size, kernel_size))
        nn.init.xavier_uniform_(self.weight)
        self.channels_last_island = False  # see use_channels_last_convs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last_island and not x.is_contiguous(memory_format=torch.channels_last):
            return self._conv(x.contiguous(memory_format=torch.channels_last)).contiguous()
        return self._conv(x)

    def _conv(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        a, b, k, _ = self.weight.shape
        i, o = (a, b) if self.TRANSPOSED else (b, a)
        return f"{i}, {o}, kernel_size={k}, stride={self.stride}, padding=SAME, bias=False"


class Conv2dSame(_SameConv):
    """Bias-free conv with TensorFlow 'SAME' padding; weight (out, in, k, k)."""

    def _conv(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel_size == 1:  # SAME pads a 1x1 conv by nothing: it reads every stride-th pixel
            s = self.stride
            return F.conv2d(x if s == 1 else x[..., ::s, ::s], self.weight)
        top, bottom, _ = same_padding(x.shape[-2], self.kernel_size, self.stride)
        left, right, _ = same_padding(x.shape[-1], self.kernel_size, self.stride)
        if top == bottom and left == right:
            return F.conv2d(x, self.weight, stride=self.stride, padding=(top, left))
        return F.conv2d(F.pad(x, (left, right, top, bottom)), self.weight, stride=self.stride)


class ConvTranspose2dSame(_SameConv):
    """Bias-free transposed conv with TensorFlow 'SAME' semantics: output size = input * stride.

    Equal to the gradient w.r.t. the input of ``Conv2dSame`` (same weight tensor, read as that
    conv's (out, in, k, k) weight) applied to an input of size input * stride. Weight
    (in, out, k, k).
    """

    TRANSPOSED = True

    def _conv(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size, self.stride
        out_h, out_w = x.shape[-2] * s, x.shape[-1] * s
        # The conv this is the gradient of pads its (out_h, out_w) input by (top, left) first, so
        # the full transposed output (length (n-1)*s + k) is cropped from offset top / left.
        top, _, _ = same_padding(out_h, k, s)
        left, _, _ = same_padding(out_w, k, s)
        y = F.conv_transpose2d(x, self.weight, stride=s, padding=(top, left))
        y = y[..., :out_h, :out_w]
        short_h, short_w = out_h - y.shape[-2], out_w - y.shape[-1]
        if short_h or short_w:  # only when kernel < stride: trailing input pixels get no gradient
            y = F.pad(y, (0, short_w, 0, short_h))
        return y


def use_channels_last_convs(model: nn.Module, enabled: bool = True) -> None:
    """Run ``model``'s SAME (transposed) convs channels-last on standard-layout tensors: each
    converts its input to channels-last and its output back, so batch norms, activations and
    resampling stay in the standard layout. The same function, other float rounding; a CPU
    training speed-up (oneDNN's convs with few channels are several times faster channels-last,
    its batch norms with few channels several times slower; README "Training PRNet")."""
    for module in model.modules():
        if isinstance(module, _SameConv):
            module.channels_last_island = enabled


def _batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM, affine=True)


class ConvUnit(nn.Module):
    """conv (SAME, no bias) -> batch norm -> activation; ``tcl.conv2d`` / ``conv2d_transpose``."""

    def __init__(self, conv: nn.Module, channels: int, activation: nn.Module):
        super().__init__()
        self.conv = conv
        self.bn = _batch_norm(channels)
        self.act = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class TemplateSigmoid(nn.Module):
    """The output activation with a learnable per-pixel offset: ``sigmoid(x + bias)``,
    bias (3, S, S).

    Initialised to 0 (then it is the paper's plain sigmoid); :meth:`PRNet.set_template` sets it to
    the logit of a mean training map, so the network starts from that map and learns the
    image-dependent rest. Lives in the last decoder unit as its activation, so batch-norm folding
    for inference keeps it.
    """

    def __init__(self, size: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(3, size, size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x + self.bias.to(x.dtype))


class ResBlock(nn.Module):
    """PRNet's bottleneck residual block (see module docstring); ``channels`` must be even."""

    def __init__(self, in_channels: int, channels: int, stride: int, kernel_size: int = KERNEL):
        super().__init__()
        if channels % 2:
            raise ValueError(f"ResBlock channels must be even, got {channels}")
        half = channels // 2
        self.shortcut: nn.Module
        if stride != 1 or in_channels != channels:
            self.shortcut = Conv2dSame(in_channels, channels, 1, stride)
        else:
            self.shortcut = nn.Identity()
        self.conv1 = ConvUnit(Conv2dSame(in_channels, half, 1, 1), half, nn.ReLU(inplace=True))
        self.conv2 = ConvUnit(
            Conv2dSame(half, half, kernel_size, stride), half, nn.ReLU(inplace=True)
        )
        self.conv3 = Conv2dSame(half, channels, 1, 1)
        self.bn = _batch_norm(channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3(self.conv2(self.conv1(x)))
        return self.act(self.bn(y + self.shortcut(x)))


class PRNet(nn.Module):
    """PRNet ("resfcn256") at channel ``width`` for square ``in_size`` inputs (divisible by 32).

    ``forward(x)``: x (B, 3, in_size, in_size) RGB in [0, 1] -> (B, 3, in_size, in_size) in [0, 1];
    multiply by ``map_scale`` (:func:`map_scale` of ``in_size``) for crop pixels. Submodules:
    ``stem``, ``encoder`` (10 ResBlocks), ``decoder`` (17 ConvUnits). Works with channels-last
    inputs/weights.

    ``template`` (default False: the paper's plain sigmoid): the output activation gets a learnable
    per-pixel offset (:class:`TemplateSigmoid`), which :meth:`set_template` starts at a mean map.

    ``net_size`` (default ``in_size``: the paper's network): the layers run at this smaller square
    size instead. The input is resized to it (bilinear, antialiased) and the output map resized back
    to ``in_size`` (bilinear); the values stay in ``in_size``-crop pixels / MAP_SCALE, so data, loss
    and decoding are unchanged. 128 for a 256 crop is about 4x cheaper (the short CPU default).
    """

    def __init__(
        self,
        width: int = 16,
        in_size: int = 256,
        net_size: int | None = None,
        template: bool = False,
    ):
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be positive, got {width}")
        if in_size < 32 or in_size % 32:
            raise ValueError(f"in_size must be a positive multiple of 32, got {in_size}")
        net_size = in_size if net_size is None else int(net_size)
        if net_size < 32 or net_size % 32 or net_size > in_size:
            raise ValueError(f"net_size must be a multiple of 32 in [32, in_size], got {net_size}")
        self.width, self.in_size, self.net_size, self.template = (
            width,
            in_size,
            net_size,
            bool(template),
        )
        self.stem = ConvUnit(Conv2dSame(3, width, KERNEL, 1), width, nn.ReLU(inplace=True))
        blocks, cin = [], width
        for mult, stride in zip(ENCODER_MULTIPLES, ENCODER_STRIDES):
            blocks.append(ResBlock(cin, mult * width, stride))
            cin = mult * width
        self.encoder = nn.Sequential(*blocks)
        widths = [m * width for m in DECODER_MULTIPLES] + [3, 3, 3]
        units = []
        for i, (cout, stride) in enumerate(zip(widths, DECODER_STRIDES)):
            last = i == len(widths) - 1
            act = (
                (TemplateSigmoid(net_size) if template else nn.Sigmoid())
                if last
                else nn.ReLU(inplace=True)
            )
            units.append(ConvUnit(ConvTranspose2dSame(cin, cout, KERNEL, stride), cout, act))
            cin = cout
        self.decoder = nn.Sequential(*units)

    @torch.no_grad()
    def set_template(self, mean_map: torch.Tensor, gain: float = 0.1) -> None:
        """Start from a mean map: ``mean_map`` (3, in_size, in_size) on the [0, 1] output scale
        (crop pixels / MAP_SCALE). Sets the output offset to its logit (at ``net_size``) and the
        last batch norm's scale to ``gain``, so the first outputs are that map plus small
        image-dependent terms. Needs ``template=True``."""
        if not self.template:
            raise ValueError("set_template needs a PRNet built with template=True")
        m = mean_map.detach().to(torch.float32)[None]
        if m.shape[-1] != self.net_size:
            m = F.interpolate(
                m,
                size=(self.net_size, self.net_size),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
        m = m[0].clamp(1e-3, 1 - 1e-3)
        last = self.decoder[-1]
        last.act.bias.copy_(torch.log(m / (1 - m)))
        last.bn.weight.fill_(gain)
        last.bn.bias.zero_()

    @property
    def map_scale(self) -> float:
        """Crop pixels per unit of output: :func:`map_scale` of ``in_size``."""
        return map_scale(self.in_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) input, got shape {tuple(x.shape)}")
        if self.net_size == self.in_size:
            return self.decoder(self.encoder(self.stem(x)))
        size = x.shape[-2:]
        small = F.interpolate(
            x,
            size=(self.net_size, self.net_size),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
        y = self.decoder(self.encoder(self.stem(small)))
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters; BN running statistics are buffers and not counted."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# ----------------------------------------------------------------------------------------------
# TensorFlow checkpoint names
# ----------------------------------------------------------------------------------------------


def _tf_suffix(base: str, index: int) -> str:
    return base if index == 0 else f"{base}_{index}"


def _bn_entries(scope: str, bn: nn.BatchNorm2d) -> dict[str, torch.Tensor]:
    return {
        f"{scope}/BatchNorm/gamma": bn.weight,
        f"{scope}/BatchNorm/beta": bn.bias,
        f"{scope}/BatchNorm/moving_mean": bn.running_mean,
        f"{scope}/BatchNorm/moving_variance": bn.running_var,
    }


def tf_variable_map(model: PRNet, scope: str = TF_SCOPE) -> dict[str, torch.Tensor]:
    """TensorFlow variable name -> the PyTorch parameter/buffer it fills.

    Names follow ``tf.contrib.layers`` auto-scoping in the authors' graph: ``resfcn256/Conv``
    (stem), ``resfcn256/resBlock[_i]/{shortcut,Conv,Conv_1,Conv_2,BatchNorm}`` and
    ``resfcn256/Conv2d_transpose[_i]``. Kernels are stored TF-layout (see module docstring).
    """
    entries: dict[str, torch.Tensor] = {f"{scope}/Conv/weights": model.stem.conv.weight}
    entries.update(_bn_entries(f"{scope}/Conv", model.stem.bn))
    for i, block in enumerate(model.encoder):
        b = f"{scope}/{_tf_suffix('resBlock', i)}"
        if isinstance(block.shortcut, Conv2dSame):
            entries[f"{b}/shortcut/weights"] = block.shortcut.weight
        entries[f"{b}/Conv/weights"] = block.conv1.conv.weight
        entries.update(_bn_entries(f"{b}/Conv", block.conv1.bn))
        entries[f"{b}/Conv_1/weights"] = block.conv2.conv.weight
        entries.update(_bn_entries(f"{b}/Conv_1", block.conv2.bn))
        entries[f"{b}/Conv_2/weights"] = block.conv3.weight
        entries.update(_bn_entries(b, block.bn))
    for i, unit in enumerate(model.decoder):
        d = f"{scope}/{_tf_suffix('Conv2d_transpose', i)}"
        entries[f"{d}/weights"] = unit.conv.weight
        entries.update(_bn_entries(d, unit.bn))
    return entries


def load_tf_weights(model: PRNet, weights: Mapping[str, np.ndarray], scope: str = TF_SCOPE) -> None:
    """Fill ``model`` from TensorFlow arrays keyed by variable name (a trailing ':0' is allowed).

    Kernels are converted HWIO -> OIHW (conv) and (kh, kw, out, in) -> (in, out, kh, kw)
    (transposed conv), both ``transpose(3, 2, 0, 1)``. Every variable of the model must be present;
    extra names (optimizer slots, global_step) are ignored. Raises KeyError / ValueError otherwise.
    """
    given = {name[:-2] if name.endswith(":0") else name: value for name, value in weights.items()}
    targets = tf_variable_map(model, scope)
    missing = sorted(set(targets) - set(given))
    if missing:
        raise KeyError(f"{len(missing)} TensorFlow variables missing, e.g. {missing[:3]}")
    with torch.no_grad():
        for name, target in targets.items():
            value = np.asarray(given[name])
            if value.ndim == 4:
                value = value.transpose(3, 2, 0, 1)
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(f"{name}: shape {value.shape} does not fit {tuple(target.shape)}")
            target.copy_(torch.from_numpy(np.ascontiguousarray(value)).to(target.dtype))


def export_tf_weights(model: PRNet, scope: str = TF_SCOPE) -> dict[str, np.ndarray]:
    """Inverse of :func:`load_tf_weights`: TensorFlow-layout arrays keyed by variable name."""
    out = {}
    for name, tensor in tf_variable_map(model, scope).items():
        value = tensor.detach().cpu().numpy()
        out[name] = value.transpose(2, 3, 1, 0).copy() if value.ndim == 4 else value.copy()
    return out


def stage_sizes(in_size: int = 256) -> list[int]:
    """Spatial size after the stem, each encoder block and each decoder unit (for docs/tests)."""
    sizes, n = [in_size], in_size
    for s in ENCODER_STRIDES:
        n = math.ceil(n / s)
        sizes.append(n)
    for s in DECODER_STRIDES:
        n *= s
        sizes.append(n)
    return sizes
