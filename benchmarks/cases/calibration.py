"""Benchmark cases of the calibration losses (``jaxloss/calibration.py``).

Logits are ``(examples, classes)`` with integer labels; ``soft_binned_ece`` and
``mmce`` score the whole batch as one set. Peers: the plain jnp expression
(optax and torch have none of these losses).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss as jl
from benchmarks.case import Case, in_float32


def _logits_labels(rng, size):
  examples, classes = size
  return rng.standard_normal(size, np.float32) * 2, rng.integers(0, classes, examples).astype(np.int32)


def _brier(x, y):
  p = jax.nn.softmax(x, axis=-1)
  return jnp.mean(jnp.sum(jnp.square(p - jax.nn.one_hot(y, x.shape[-1], dtype=p.dtype)), -1))


def _entropy(x):
  log_p = jax.nn.log_softmax(x, axis=-1)
  return jnp.mean(-jnp.sum(jnp.exp(log_p) * log_p, -1))


def _confidence_penalty(x, y, beta=0.1):
  log_p = jax.nn.log_softmax(x, axis=-1)
  nll = -jnp.take_along_axis(log_p, y[:, None], axis=-1)[:, 0]
  return jnp.mean(nll + beta * jnp.sum(jnp.exp(log_p) * log_p, -1))


def _confidence_accuracy(x, y):
  return jnp.max(jax.nn.softmax(x, axis=-1), -1), (jnp.argmax(x, -1) == y).astype(x.dtype)


def _soft_binned_ece(x, y, bins=15, temperature=0.01):
  c, a = _confidence_accuracy(x, y)
  centres = (jnp.arange(bins, dtype=c.dtype) + 0.5) / bins
  u = jax.nn.softmax(-jnp.square(c[:, None] - centres[None, :]) / temperature, axis=-1)
  return jnp.sum(jnp.abs(jnp.sum(u * (a - c)[:, None], 0))) / x.shape[0]


def _mmce(x, y, bandwidth=0.4):
  c, a = _confidence_accuracy(x, y)
  d = a - c
  kernel = jnp.exp(-jnp.abs(c[:, None] - c[None, :]) / bandwidth)
  return jnp.sqrt(jnp.sum(d[:, None] * d[None, :] * kernel)) / x.shape[0]


CASES = [
  Case(
    "brier",
    "calibration",
    jl.brier,
    _logits_labels,
    sizes=((4096, 1024), (4096, 32768)),
    jnp=in_float32(_brier),
    quick_sizes=((4096, 1024),),
    smoke_size=(8, 5),
  ),
  Case(
    "entropy",
    "calibration",
    jl.entropy,
    lambda rng, size: (rng.standard_normal(size, np.float32) * 2,),
    sizes=((4096, 1024), (4096, 32768)),
    jnp=in_float32(_entropy),
    quick_sizes=((4096, 1024),),
    smoke_size=(8, 5),
  ),
  Case(
    "confidence_penalty",
    "calibration",
    functools.partial(jl.confidence_penalty, beta=0.1),
    _logits_labels,
    sizes=((4096, 1024), (4096, 32768)),
    jnp=in_float32(_confidence_penalty),
    quick_sizes=((4096, 1024),),
    smoke_size=(8, 5),
  ),
  Case(
    "soft_binned_ece",
    "calibration",
    jl.soft_binned_ece,
    _logits_labels,
    sizes=((65536, 100),),
    dtypes=("float32",),
    jnp=_soft_binned_ece,
    quick_sizes=((65536, 100),),
    smoke_size=(16, 5),
  ),
  Case(
    "mmce",
    "calibration",
    jl.mmce,
    _logits_labels,
    sizes=((4096, 100),),
    dtypes=("float32",),
    jnp=_mmce,
    quick_sizes=((4096, 100),),
    smoke_size=(16, 5),
  ),
]
