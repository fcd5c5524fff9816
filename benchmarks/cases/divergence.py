"""Benchmark cases of the divergences (``jaxloss/divergence.py``).

Row-wise over the last axis: inputs are log-probabilities (and probabilities)
of shape ``(B, C)``, sizes are ``(B, C)``. Peers: ``optax.losses.kl_divergence``
(mean over rows) and torch ``kl_div(..., reduction="batchmean")``; optax and
torch have no Jensen-Shannon divergence.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
from jax.scipy.special import xlogy

import jaxloss as jl
from benchmarks.case import Case, in_float32, torch_functional


def _log_softmax(x):
  x = x - x.max(axis=-1, keepdims=True)
  return (x - np.log(np.exp(x).sum(axis=-1, keepdims=True))).astype(np.float32)


def _log_predictions_targets(rng, size):
  log_q = _log_softmax(rng.standard_normal(size, np.float32))
  return log_q, np.exp(_log_softmax(rng.standard_normal(size, np.float32)))


def _two_log_distributions(rng, size):
  return _log_softmax(rng.standard_normal(size, np.float32)), _log_softmax(rng.standard_normal(size, np.float32))


def _js(log_p, log_q):
  log_m = jnp.logaddexp(log_p, log_q) - jnp.log(2.0)
  p, q = jnp.exp(log_p), jnp.exp(log_q)
  return jnp.mean(0.5 * jnp.sum(p * (log_p - log_m) + q * (log_q - log_m), axis=-1))


_SIZES = ((1024, 1024), (4096, 8192))

CASES = [
  Case(
    "kl_divergence",
    "divergence",
    jl.kl_divergence,
    _log_predictions_targets,
    sizes=_SIZES,
    jnp=in_float32(lambda log_q, p: jnp.mean(jnp.sum(xlogy(p, p) - p * log_q, axis=-1))),
    optax=lambda log_q, p: jnp.mean(optax.losses.kl_divergence(log_q, p)),
    torch=lambda log_q, p: torch_functional().kl_div(log_q, p, reduction="batchmean"),
    quick_sizes=((1024, 1024),),
    smoke_size=(8, 16),
  ),
  Case(
    "js_divergence",
    "divergence",
    jl.js_divergence,
    _two_log_distributions,
    sizes=_SIZES[:1],
    dtypes=("float32",),
    jnp=in_float32(_js),
    smoke_size=(8, 16),
    diff=(0, 1),
  ),
]
