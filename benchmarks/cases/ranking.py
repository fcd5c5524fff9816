"""Benchmark cases of the learning-to-rank losses (``jaxloss/ranking.py``).

Scores and relevance labels are ``(lists, items)``. Each list has one relevant
item (a click): optax's ``ranking_softmax_loss`` does not normalise the labels
(rax and jaxloss do), so with one relevant item per list the two agree. Peers:
optax for the softmax loss; optax and torch have no pairwise ranking losses.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxloss as jl
from benchmarks.case import Case, in_float32


def _scores_clicks(rng, size):
  lists, items = size
  clicks = np.zeros(size, np.float32)
  clicks[np.arange(lists), rng.integers(0, items, lists)] = 1
  return rng.standard_normal(size, np.float32), clicks


def _pairwise_logistic(s, y):
  better = y[..., :, None] > y[..., None, :]
  pair = jax.nn.softplus(-(s[..., :, None] - s[..., None, :]))
  return jnp.mean(jnp.sum(jnp.where(better, pair, 0), axis=(-2, -1)))  # summed over pairs, as rax


def _pairwise_hinge(s, y):
  better = y[..., :, None] > y[..., None, :]
  pair = jax.nn.relu(1 - (s[..., :, None] - s[..., None, :]))
  return jnp.mean(jnp.sum(jnp.where(better, pair, 0), axis=(-2, -1)))


CASES = [
  Case(
    "softmax_ranking",
    "ranking",
    jl.softmax_ranking,
    _scores_clicks,
    sizes=((4096, 32), (16384, 256), (65536, 1024)),
    jnp=in_float32(lambda s, y: jnp.mean(-jnp.sum(y * jax.nn.log_softmax(s, axis=-1), -1) / jnp.sum(y, -1))),
    optax=lambda s, y: optax.losses.ranking_softmax_loss(s, y),
    quick_sizes=((16384, 256),),
    smoke_size=(4, 8),
  ),
  Case(
    "pairwise_logistic",
    "ranking",
    jl.pairwise_logistic,
    _scores_clicks,
    sizes=((4096, 32),),
    dtypes=("float32",),
    jnp=in_float32(_pairwise_logistic),
    smoke_size=(4, 8),
  ),
  Case(
    "pairwise_hinge",
    "ranking",
    jl.pairwise_hinge,
    _scores_clicks,
    sizes=((4096, 32),),
    dtypes=("float32",),
    jnp=in_float32(_pairwise_hinge),
    smoke_size=(4, 8),
  ),
]
