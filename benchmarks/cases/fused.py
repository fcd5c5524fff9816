"""Benchmark cases of the fused losses (``jaxloss/fused.py``).

``linear_cross_entropy`` is compute-bound (three matrix products for
``value_and_grad``, in jaxloss's mean as in the naive path), so the case reports
GFLOP/s of the naive path's work. Its figures are
the temp-memory and time ratios against the naive path, which is the ``jnp``
peer here: the ``[tokens, vocab]`` logits, then :func:`jaxloss.cross_entropy`.
optax has no fused loss: its peer is the same naive path through
``softmax_cross_entropy_with_integer_labels``. The torch peer is
``torch.nn.functional.linear_cross_entropy`` with its chunked implementation
(``options=LinearCrossEntropyOptions()``; ``options=None`` is its naive path).
Peak process memory needs separate processes: ``python -m benchmarks.peak_memory``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax

import jaxloss as jl
from benchmarks.case import Case, torch_functional

# Issue 6's acceptance shape: tokens, features, vocabulary.
ACCEPTANCE = (8192, 1024, 32768)


def tokens(rng, size):
  """``hidden [N, D]``, ``weight [V, D]`` scaled to unit-variance logits, ``labels [N]``."""
  n, d, v = size
  hidden = rng.standard_normal((n, d), np.float32)
  weight = (rng.standard_normal((v, d), np.float32) / np.float32(np.sqrt(d))).astype(np.float32)
  return hidden, weight, rng.integers(0, v, n).astype(np.int32)


def naive(hidden, weight, labels):
  """The naive path: the logits, then ``jl.cross_entropy``."""
  return jl.cross_entropy(jnp.matmul(hidden, weight.T), labels)


def torch_chunked(hidden, weight, labels):
  """torch 2.13's chunked ``linear_cross_entropy`` (same ``[V, D]`` weight layout)."""
  import torch

  options = torch.nn.LinearCrossEntropyOptions()
  return torch_functional().linear_cross_entropy(hidden, weight, labels.long(), options=options)


def _flops(inputs, mode, diff):
  """The naive path's matrix products: one forward, two more for the gradients."""
  (n, d), v = inputs[0].shape, inputs[1].shape[0]
  return 2 * n * d * v * (1 if mode == "forward" else 3)


CASES = [
  Case(
    name="linear_cross_entropy",
    family="fused",
    loss=jl.linear_cross_entropy,
    make=tokens,
    sizes=(ACCEPTANCE,),
    jnp=naive,
    optax=lambda h, w, y: jnp.mean(optax.losses.softmax_cross_entropy_with_integer_labels(jnp.matmul(h, w.T), y)),
    torch=torch_chunked,
    quick_sizes=((512, 256, 4096),),  # torch chunked takes seconds per call beyond this
    dtypes=("float32",),
    smoke_size=(16, 8, 40),
    diff=(0, 1),
    flops=_flops,
  ),
]
