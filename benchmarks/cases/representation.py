"""Benchmark cases of the representation-learning losses (``jaxloss/representation.py``).

Sizes are ``(B, D)``: one set of ``B`` embeddings of size ``D`` (``B`` image-text pairs for ``clip``
and ``siglip``). Each loss compares every pair of the set (a ``B x B x D`` matrix product, reported in
GFLOP/s); the peer is the plain jnp expression written from the paper's pseudo-code.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss as jl
from benchmarks.case import Case, in_float32


def _pairs(rng, size):
  x = rng.standard_normal(size, np.float32)
  return x, x + rng.standard_normal(size, np.float32)


def _labelled(rng, size):
  """Embeddings and labels of ``B / 8`` classes of 8 members (a class-balanced batch, as SupCon samples)."""
  return rng.standard_normal(size, np.float32), rng.permutation(np.arange(size[0]) // 8).astype(np.int32)


def _unit(x):
  return x / jnp.linalg.norm(x, axis=-1, keepdims=True)


def _clip(images, texts, temperature=0.07):
  """Radford et al.: (cross_entropy(logits, arange) + cross_entropy(logits.T, arange)) / 2."""
  logits = _unit(images) @ _unit(texts).T / temperature
  rows, columns = jax.nn.logsumexp(logits, axis=1), jax.nn.logsumexp(logits, axis=0)
  return jnp.mean((rows + columns) / 2 - jnp.diagonal(logits))


def _siglip(x, y, temperature=10.0, bias=-10.0):
  """Zhai et al.: -sum(log_sigmoid(labels * logits)) / n, labels = 2 I - 1."""
  logits = _unit(x) @ _unit(y).T * temperature + bias
  labels = 2 * jnp.eye(x.shape[0], dtype=logits.dtype) - 1
  return -jnp.sum(jax.nn.log_sigmoid(labels * logits)) / x.shape[0]


def _supcon(e, labels, temperature=0.1):
  """Khosla et al., equation 2: -mean over positives of log(e^s_p / sum_{a != i} e^s_a), mean over anchors."""
  unit = _unit(e)
  s = unit @ unit.T / temperature
  others = ~jnp.eye(e.shape[0], dtype=bool)
  positive = (labels[:, None] == labels[None, :]) & others
  log_prob = s - jax.nn.logsumexp(jnp.where(others, s, -jnp.inf), axis=1, keepdims=True)
  count = jnp.sum(positive, axis=1, dtype=s.dtype)
  return jnp.mean(-jnp.sum(jnp.where(positive, log_prob, 0), axis=1) / count)  # every anchor has positives


def _products(count):
  def flops(inputs, mode, diff):
    batch, dim = inputs[0].shape
    return count * 2 * batch * batch * dim * (1 if mode == "forward" else 3)  # value_and_grad: two more products

  return flops


_SIZES = ((1024, 128), (4096, 512))
SETS = {"sizes": _SIZES, "dtypes": ("float32",), "quick_sizes": ((1024, 128),), "smoke_size": (8, 4)}

CASES = [
  Case("clip", "representation", jl.clip, _pairs, jnp=in_float32(_clip), diff=(0, 1), flops=_products(1), **SETS),
  Case("siglip", "representation", jl.siglip, _pairs, jnp=in_float32(_siglip), diff=(0, 1), flops=_products(1), **SETS),
  Case("supcon", "representation", jl.supcon, _labelled, jnp=in_float32(_supcon), flops=_products(1), **SETS),
]
