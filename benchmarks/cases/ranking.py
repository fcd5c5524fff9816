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
]


def _graded(rng, size):
  return rng.standard_normal(size, np.float32), rng.integers(0, 4, size).astype(np.float32)


def _approx_ndcg(s, y, temperature=1.0):
  above = jax.nn.sigmoid((s[..., None, :] - s[..., :, None]) / temperature)
  rank = 1 + jnp.sum(jnp.where(jnp.eye(s.shape[-1], dtype=bool)[None], 0, above), -1)
  gain = jnp.exp2(y) - 1
  ideal = jnp.sum(-jnp.sort(-gain, -1) / jnp.log2(jnp.arange(2, s.shape[-1] + 2, dtype=s.dtype))[None], -1)
  return jnp.mean(1 - jnp.sum(gain / jnp.log2(1 + rank), -1) / ideal)


def _listmle(s, y):
  order = jnp.argsort(-y, axis=-1, stable=True)
  sorted_scores = jnp.take_along_axis(s, order, -1)
  suffix = jax.lax.cumlogsumexp(sorted_scores, axis=sorted_scores.ndim - 1, reverse=True)
  return jnp.mean(jnp.sum(suffix - sorted_scores, -1))


CASES += [
  Case(
    "approx_ndcg",
    "ranking",
    jl.approx_ndcg,
    _graded,
    sizes=((1024, 128),),
    dtypes=("float32",),
    jnp=_approx_ndcg,
    quick_sizes=((1024, 128),),
    smoke_size=(4, 8),
  ),
  Case(
    "listmle",
    "ranking",
    jl.listmle,
    _graded,
    sizes=((4096, 32), (1024, 256)),
    dtypes=("float32",),
    jnp=_listmle,
    quick_sizes=((4096, 32),),
    smoke_size=(4, 8),
  ),
]
