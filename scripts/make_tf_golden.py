"""Write the TensorFlow golden fixture: a real V2 checkpoint of PRNet's graph plus TensorFlow's
outputs.

Run by hand, never by CI or the README commands; it needs TensorFlow, which the project does not
depend on. Made with tensorflow-cpu 2.21.0 (numpy 2.4.6, Python 3.11) in a scratch venv outside
the project::

    python3 -m venv /work/scratch-tf && /work/scratch-tf/bin/pip install tensorflow-cpu numpy
    /work/scratch-tf/bin/python scripts/make_tf_golden.py --out tests/fixtures/tf_golden

What it builds, independently of the project's PyTorch code: the paper's "resfcn256" graph as the
authors' TensorFlow 1 code does it (``tf.contrib.layers`` conv2d / conv2d_transpose, no biases,
'SAME' padding, batch norm with scale and offset, eps 1e-3, in inference mode: moving statistics),
with ``tf.compat.v1`` variables under the released checkpoint's names (``resfcn256/Conv/weights``,
``resfcn256/resBlock_3/Conv_1/BatchNorm/moving_mean``, ``resfcn256/Conv2d_transpose_16/...``),
at width ``--width`` (16 in the release) on ``--size`` x ``--size`` inputs. Weights are
Glorot-uniform from a seeded numpy generator, BN gammas/betas random, and every BN's moving
statistics are set from the batch statistics of its input on a calibration batch and then
perturbed (variances floored at half their mean, so no channel amplifies float32 rounding) (so the
test exercises them and the sigmoid output is spread over (0, 1), not saturated). Adam slots for two
variables, ``beta1_power``/``beta2_power`` and ``global_step`` are created too (the release holds
such extras; readers must skip them).

Outputs in ``--out``: ``model.index`` + ``model.data-00000-of-00001`` (written by
``tf.compat.v1.train.Saver``, the V2 bundle), and ``golden.npz`` with ``inputs`` (2, S, S, 3)
float32 in [0, 1] (NHWC), ``outputs`` (2, S, S, 3) float32 the graph's sigmoid (multiply by
256 * 1.1 for PRNet's pixels), ``outputs64`` the same graph and weights computed by TensorFlow in
float64 (every variable cast on read; it separates semantics from float32 rounding, which in this
random width-2 network reaches about 0.01 px), ``width``, ``size`` and ``tf_version``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402

v1 = tf.compat.v1
EPS = 1e-3


class Graph:
    """Builds the graph; remembers every batch norm's input and its moving-statistic variables."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.bns: list[tuple[tf.Tensor, tf.Variable, tf.Variable]] = []
        self.counts: dict[tuple[str, str], int] = {}
        self.dtype = tf.float32

    def var(self, name: str, value: np.ndarray, trainable: bool = True) -> tf.Tensor:
        """A float32 variable (created, or reused in the second tower) read in the tower's dtype."""
        self.last = v1.get_variable(name, initializer=value, trainable=trainable)
        return tf.cast(self.last, self.dtype)

    def unique(self, base: str) -> str:
        """tf.contrib.layers' default scope names: base, base_1, base_2, ... per enclosing scope."""
        scope = v1.get_variable_scope().name
        k = self.counts.get((scope, base), 0)
        self.counts[(scope, base)] = k + 1
        return base if k == 0 else f"{base}_{k}"

    def glorot(self, shape: tuple[int, ...], fan_in: int, fan_out: int) -> np.ndarray:
        lim = np.sqrt(6.0 / (fan_in + fan_out))
        return self.rng.uniform(-lim, lim, size=shape).astype(np.float32)

    def batch_norm(self, x: tf.Tensor) -> tf.Tensor:
        c = int(x.shape[-1])
        with v1.variable_scope("BatchNorm"):
            beta = self.var("beta", self.rng.normal(0, 0.2, c).astype(np.float32))
            gamma = self.var("gamma", self.rng.uniform(0.6, 1.4, c).astype(np.float32))
            mean = self.var("moving_mean", np.zeros(c, np.float32), trainable=False)
            mean_var = self.last
            var = self.var("moving_variance", np.ones(c, np.float32), trainable=False)
            if self.dtype == tf.float32:
                self.bns.append((x, mean_var, self.last))
        return tf.nn.batch_normalization(x, mean, var, beta, gamma, EPS)

    def conv(
        self,
        x: tf.Tensor,
        out: int,
        k: int,
        stride: int,
        act=tf.nn.relu,
        bn: bool = True,
        scope: str | None = None,
    ) -> tf.Tensor:
        cin = int(x.shape[-1])
        with v1.variable_scope(scope or self.unique("Conv")):
            w = self.var("weights", self.glorot((k, k, cin, out), k * k * cin, k * k * out))
            y = tf.nn.conv2d(x, w, strides=[1, stride, stride, 1], padding="SAME")
            if bn:
                y = self.batch_norm(y)
            return act(y) if act is not None else y

    def conv_t(self, x: tf.Tensor, out: int, k: int, stride: int, act=tf.nn.relu) -> tf.Tensor:
        cin = int(x.shape[-1])
        with v1.variable_scope(self.unique("Conv2d_transpose")):
            w = self.var("weights", self.glorot((k, k, out, cin), k * k * cin, k * k * out))
            shape = tf.stack(
                [tf.shape(x)[0], int(x.shape[1]) * stride, int(x.shape[2]) * stride, out]
            )
            y = tf.nn.conv2d_transpose(x, w, shape, strides=[1, stride, stride, 1], padding="SAME")
            y = tf.reshape(y, [-1, int(x.shape[1]) * stride, int(x.shape[2]) * stride, out])
            return act(self.batch_norm(y))

    def res_block(self, x: tf.Tensor, out: int, stride: int, k: int = 4) -> tf.Tensor:
        with v1.variable_scope(self.unique("resBlock")):
            shortcut = x
            if stride != 1 or int(x.shape[-1]) != out:
                shortcut = self.conv(x, out, 1, stride, act=None, bn=False, scope="shortcut")
            y = self.conv(x, out // 2, 1, 1)
            y = self.conv(y, out // 2, k, stride)
            y = self.conv(y, out, 1, 1, act=None, bn=False)
            return tf.nn.relu(self.batch_norm(y + shortcut))

    def resfcn256(self, x: tf.Tensor, w: int, reuse: bool = False) -> tf.Tensor:
        self.counts.clear()
        self.dtype = x.dtype
        with v1.variable_scope("resfcn256", reuse=reuse):
            se = self.conv(x, w, 4, 1)
            for mult, stride in zip((2, 2, 4, 4, 8, 8, 16, 16, 32, 32), (2, 1) * 5):
                se = self.res_block(se, mult * w, stride)
            pd = se
            chans = [m * w for m in (32, 16, 16, 16, 8, 8, 8, 4, 4, 4, 2, 2, 1, 1)] + [3, 3]
            strides = (1, 2, 1, 1, 2, 1, 1, 2, 1, 1, 2, 1, 2, 1, 1, 1)
            for c, s in zip(chans, strides):
                pd = self.conv_t(pd, c, 4, s)
            return self.conv_t(pd, 3, 4, 1, act=tf.nn.sigmoid)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("tests/fixtures/tf_golden"))
    ap.add_argument("--width", type=int, default=2)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    v1.disable_eager_execution()
    rng = np.random.default_rng(args.seed)
    s = args.size
    yy, xx = np.mgrid[0:s, 0:s] / (s - 1)
    smooth = np.stack([xx, yy, 0.5 + 0.5 * np.sin(6 * xx * yy)], axis=-1)
    inputs = np.stack([rng.uniform(0, 1, (s, s, 3)), smooth]).astype(np.float32)
    calib = rng.uniform(0, 1, (4, s, s, 3)).astype(np.float32)

    g = Graph(rng)
    x = v1.placeholder(tf.float32, [None, s, s, 3], name="x")
    y = g.resfcn256(x, args.width)
    x64 = v1.placeholder(tf.float64, [None, s, s, 3], name="x64")
    y64 = g.resfcn256(x64, args.width, reuse=True)  # the same variables, computed in float64
    net_vars = [v for v in v1.trainable_variables()]
    step = v1.train.get_or_create_global_step()
    opt = v1.train.AdamOptimizer(1e-4)
    train = opt.minimize(tf.reduce_mean(y), var_list=[net_vars[0], net_vars[-1]], global_step=step)
    del train
    with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        for pre, mean, var in g.bns:  # in creation (= data-flow) order
            a = sess.run(pre, {x: calib})
            m, v = a.mean(axis=(0, 1, 2)), a.var(axis=(0, 1, 2))
            c = m.size
            v = v + 0.5 * v.mean() + 1e-3  # no near-zero variance: it would amplify float32 noise
            m = m + rng.normal(0, 0.2, c) * np.sqrt(v)
            v = v * rng.uniform(0.7, 1.4, c)
            sess.run([mean.assign(m.astype(np.float32)), var.assign(v.astype(np.float32))])
        outputs = sess.run(y, {x: inputs})
        outputs64 = sess.run(y64, {x64: inputs.astype(np.float64)})
        args.out.mkdir(parents=True, exist_ok=True)
        saver = v1.train.Saver(write_version=v1.train.SaverDef.V2)
        saver.save(sess, str(args.out / "model"), write_meta_graph=False, write_state=False)
    np.savez_compressed(
        args.out / "golden.npz",
        inputs=inputs,
        outputs=outputs.astype(np.float32),
        outputs64=outputs64,
        width=args.width,
        size=s,
        tf_version=tf.__version__,
    )
    print(
        f"TensorFlow {tf.__version__}: {len(v1.global_variables())} variables, output range "
        f"{outputs.min():.3f}..{outputs.max():.3f}, std {outputs.std():.3f}"
    )
    for p in sorted(args.out.iterdir()):
        print(f"  {p} {p.stat().st_size} bytes")


if __name__ == "__main__":
    main()
