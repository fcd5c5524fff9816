"""Benchmark cases of the metric surrogates (``jaxloss/surrogates.py``).

``soft_fbeta`` scores a flat batch of binary probabilities as one set;
``auc_surrogate`` and ``smooth_ap`` score ``(lists, items)`` with about a third
of the items positive. Peers: the plain jnp expression (the pairwise one for
``auc_surrogate-square``, which jaxloss computes in closed form with ``O(L)``
memory); optax and torch have none of these losses.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss as jl
from benchmarks.case import Case


def _probs_targets(rng, size):
  return rng.uniform(0, 1, size).astype(np.float32), (rng.uniform(0, 1, size) < 0.3).astype(np.float32)


def _scores_labels(rng, size):
  labels = (rng.uniform(0, 1, size) < 0.3).astype(np.float32)
  labels[:, 0], labels[:, 1] = 1, 0  # every list has a pair
  return rng.standard_normal(size, np.float32), labels


def _soft_f1(p, t):
  return 1 - 2 * jnp.sum(p * t) / (jnp.sum(p) + jnp.sum(t))


def _pairwise_auc(phi, margin=1.0):
  def loss(s, y):
    pair = (y[:, :, None] > 0) & (y[:, None, :] <= 0)
    u = margin - (s[:, :, None] - s[:, None, :])
    per_list = jnp.sum(jnp.where(pair, phi(u), 0), (1, 2)) / jnp.sum(pair, (1, 2)).astype(s.dtype)
    return jnp.mean(per_list)

  return loss


def _smooth_ap(s, y, temperature=0.01):
  positive = y > 0
  above = jax.nn.sigmoid((s[:, None, :] - s[:, :, None]) / temperature)
  above = jnp.where(jnp.eye(s.shape[-1], dtype=bool)[None], 0, above)
  rank = 1 + jnp.sum(above, -1)
  rank_pos = 1 + jnp.sum(jnp.where(positive[:, None, :], above, 0), -1)
  ap = jnp.sum(jnp.where(positive, rank_pos / rank, 0), -1) / jnp.sum(positive, -1).astype(s.dtype)
  return jnp.mean(1 - ap)


CASES = [
  Case(
    "soft_fbeta",
    "surrogates",
    jl.soft_fbeta,
    _probs_targets,
    sizes=(10**6, 10**8),
    jnp=_soft_f1,
    quick_sizes=(10**6,),
    dtypes=("float32",),
  ),
  Case(
    "auc_surrogate",
    "surrogates",
    jl.auc_surrogate,
    _scores_labels,
    sizes=((64, 1024),),
    dtypes=("float32",),
    jnp=_pairwise_auc(lambda u: jnp.square(jax.nn.relu(u))),
    quick_sizes=((64, 1024),),
    smoke_size=(4, 8),
  ),
  Case(
    "auc_surrogate-square",
    "surrogates",
    functools.partial(jl.auc_surrogate, loss="square"),
    _scores_labels,
    sizes=((64, 1024), (32, 2048)),
    dtypes=("float32",),
    jnp=_pairwise_auc(jnp.square),
    quick_sizes=((64, 1024),),
    smoke_size=(4, 8),
  ),
  Case(
    "smooth_ap",
    "surrogates",
    jl.smooth_ap,
    _scores_labels,
    sizes=((256, 1024),),
    dtypes=("float32",),
    jnp=_smooth_ap,
    quick_sizes=((256, 1024),),
    smoke_size=(4, 8),
  ),
]
