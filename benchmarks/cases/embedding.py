"""Benchmark cases of the metric-learning losses (``jaxloss/embedding.py``).

Embeddings are ``(B, D)``, sizes are ``(B, D)``. Pairwise losses are
memory-bound like the elementwise ones; ``ntxent`` compares every pair of a
batch (a ``B x B x D`` matrix product, reported in GFLOP/s). Peers:
``optax.losses.triplet_margin_loss`` (its ``eps`` is added under the root,
torch's and jaxloss's to the difference: the values agree to ~1e-7 here) and
``optax.losses.ntxent`` (equal to jaxloss's mean when every label has one
positive, as the pairs drawn here), torch's ``triplet_margin_loss``,
``cosine_embedding_loss`` and ``margin_ranking_loss``; neither has ``contrastive``
(Hadsell et al.): its peer is the plain expression.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxloss as jl
from benchmarks.case import Case, in_float32, torch_functional


def _triplets(rng, size):
  return tuple(rng.standard_normal(size, np.float32) for _ in range(3))


def _pairs_signs(rng, size):
  x1, x2 = rng.standard_normal(size, np.float32), rng.standard_normal(size, np.float32)
  return x1, x2, np.where(rng.random(size[0]) < 0.5, -1.0, 1.0).astype(np.float32)


def _scores_signs(rng, n):
  x1, x2 = rng.standard_normal(n, np.float32), rng.standard_normal(n, np.float32)
  return x1, x2, np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(np.float32)


def _embeddings_pairs(rng, size):
  """Embeddings and labels in which every label appears exactly twice (SimCLR's two views)."""
  return rng.standard_normal(size, np.float32), rng.permutation(np.arange(size[0]) // 2).astype(np.int32)


def _near_pairs_labels(rng, size):
  """Pairs at distances around the margin 1 (so both branches are taken) and 0/1 similarity labels."""
  x1 = rng.standard_normal(size, np.float32)
  x2 = (x1 + rng.standard_normal(size, np.float32) / np.float32(np.sqrt(size[-1]))).astype(np.float32)
  return x1, x2, (rng.random(size[0]) < 0.5).astype(np.float32)


def _contrastive(x1, x2, y, margin=1.0):
  squared = jnp.sum((x1 - x2) ** 2, axis=-1)
  return jnp.mean(y * squared + (1 - y) * jax.nn.relu(margin - jnp.sqrt(squared)) ** 2)


def _distance(x, y, eps=1e-6):
  return jnp.sqrt(jnp.sum((x - y + eps) ** 2, axis=-1))


def _cosine(x1, x2):
  return jnp.sum(x1 * x2, -1) / jnp.sqrt(jnp.sum(x1 * x1, -1) * jnp.sum(x2 * x2, -1))


def _ntxent(e, labels, temperature=0.07):
  unit = e / jnp.linalg.norm(e, axis=-1, keepdims=True)
  s = unit @ unit.T / temperature
  same = labels[:, None] == labels[None, :]
  positive = same & ~jnp.eye(len(labels), dtype=bool)
  normaliser = jax.nn.logsumexp(jnp.where(positive | ~same, s, -jnp.inf), axis=-1)
  return jnp.mean(normaliser - jnp.sum(jnp.where(positive, s, 0), -1))  # one positive per row


def _ntxent_flops(inputs, mode, diff):
  batch, dim = inputs[0].shape
  return 2 * batch * batch * dim * (1 if mode == "forward" else 3)  # value_and_grad: two more products


def _optax_ntxent(e, labels):
  with jax.numpy_dtype_promotion("standard"):  # optax mixes bool and int labels
    return optax.losses.ntxent(e, labels, 0.07)


_SIZES = ((1024, 128), (16384, 128), (65536, 512))

CASES = [
  Case(
    "triplet_margin",
    "embedding",
    jl.triplet_margin,
    _triplets,
    sizes=_SIZES,
    jnp=in_float32(lambda a, p, n: jnp.mean(jax.nn.relu(_distance(a, p) - _distance(a, n) + 1.0))),
    optax=lambda a, p, n: jnp.mean(optax.losses.triplet_margin_loss(a, p, n)),
    torch=lambda a, p, n: torch_functional().triplet_margin_loss(a, p, n),
    quick_sizes=((16384, 128),),
    smoke_size=(8, 4),
    diff=(0, 1, 2),
  ),
  Case(
    "cosine_embedding",
    "embedding",
    jl.cosine_embedding,
    _pairs_signs,
    sizes=_SIZES[1:2],
    dtypes=("float32",),
    jnp=in_float32(lambda x1, x2, y: jnp.mean(jnp.where(y > 0, 1 - _cosine(x1, x2), jax.nn.relu(_cosine(x1, x2))))),
    torch=lambda x1, x2, y: torch_functional().cosine_embedding_loss(x1, x2, y),
    smoke_size=(8, 4),
    diff=(0, 1),
  ),
  Case(
    "margin_ranking",
    "embedding",
    jl.margin_ranking,
    _scores_signs,
    sizes=(10**6, 10**7),
    dtypes=("float32",),
    jnp=in_float32(lambda x1, x2, y: jnp.mean(jax.nn.relu(-y * (x1 - x2)))),
    torch=lambda x1, x2, y: torch_functional().margin_ranking_loss(x1, x2, y),
    diff=(0, 1),
  ),
  Case(
    "ntxent",
    "embedding",
    jl.ntxent,
    _embeddings_pairs,
    # optax builds the [B, B, D] difference tensor (no matrix product): B = 1024 is 0.5 GB already.
    sizes=((512, 128), (1024, 128)),
    dtypes=("float32",),
    jnp=in_float32(_ntxent),
    optax=_optax_ntxent,
    quick_sizes=((256, 128),),
    smoke_size=(8, 4),
    flops=_ntxent_flops,
  ),
  Case(
    "contrastive",
    "embedding",
    jl.contrastive,
    _near_pairs_labels,
    sizes=_SIZES[1:2],
    dtypes=("float32",),
    jnp=in_float32(_contrastive),
    smoke_size=(8, 4),
    diff=(0, 1),
  ),
]
