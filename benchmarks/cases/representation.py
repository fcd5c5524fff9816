"""Benchmark cases of the representation-learning losses (``jaxloss/representation.py``).

Sizes are ``(B, D)``: one set of ``B`` embeddings of size ``D`` (``B`` image-text pairs for ``clip``
and ``siglip``). Each loss compares every pair of the set (a ``B x B x D`` matrix product, reported in
GFLOP/s); the peer is the plain jnp expression written from the paper's pseudo-code. ``batch_triplet``'s torch
peer is pytorch-metric-learning's ``TripletMarginLoss`` (with ``BatchHardMiner`` for batch-hard mining) on
unnormalised L2 distances, where that package is installed (it is no dependency; without it the peer is absent):
the same values and gradients (to ~1e-8 in float32).
"""

from __future__ import annotations

import functools
import importlib.util

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss as jl
from benchmarks.case import Case, in_float32


def _pairs(rng, size):
  x = rng.standard_normal(size, np.float32)
  return x, x + rng.standard_normal(size, np.float32)


def _labelled(rng, size):
  """Embeddings and labels of ``B / 4`` classes of 4 members (a class-balanced batch, P x K sampling)."""
  return rng.standard_normal(size, np.float32), rng.permutation(np.arange(size[0]) // 4).astype(np.int32)


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


def _heads(rng, size):
  """Embeddings ``(B, D)``, ``B`` class centres ``(B, D)`` and labels (a face-recognition head)."""
  batch, dim = size
  e = rng.standard_normal(size, np.float32)
  return e, rng.standard_normal((batch, dim), np.float32), rng.integers(0, batch, batch).astype(np.int32)


def _arcface(e, w, labels, scale=64.0, margin=0.5):
  """InsightFace's ArcFace: cos(theta + m) = c cos m - sin(theta) sin m, its threshold, then cross-entropy."""
  cosine = _unit(e) @ _unit(w).T
  c = jnp.take_along_axis(cosine, labels[:, None], axis=1)[:, 0]
  sine = jnp.sqrt(jnp.clip(1 - c * c, 0, 1))
  target = jnp.where(
    c > np.cos(np.pi - margin), c * np.cos(margin) - sine * np.sin(margin), c - margin * np.sin(margin)
  )
  logits = scale * jnp.where(jnp.arange(w.shape[0])[None, :] == labels[:, None], target[:, None], cosine)
  return jnp.mean(jax.nn.logsumexp(logits, axis=1) - scale * target)


def _cosface(e, w, labels, scale=64.0, margin=0.35):
  """CosFace (large margin cosine loss): cross-entropy of scale * (cos - m at the target)."""
  cosine = _unit(e) @ _unit(w).T
  target = jnp.arange(w.shape[0])[None, :] == labels[:, None]
  logits = scale * (cosine - margin * target.astype(cosine.dtype))
  return jnp.mean(jax.nn.logsumexp(logits, axis=1) - jnp.sum(jnp.where(target, logits, 0), axis=1))


def _pair_masks(labels):
  same = labels[:, None] == labels[None, :]
  return same & ~jnp.eye(labels.shape[0], dtype=bool), ~same


def _circle(e, labels, margin=0.25, gamma=256.0):
  """keras 3 ``circle`` on normalised embeddings; the mean over anchors with a positive loss."""
  distance = jax.nn.relu(1 - _unit(e) @ _unit(e).T)
  positive, negative = _pair_masks(labels)
  pull = jnp.where(positive, -gamma * jax.nn.relu(margin + distance) * (margin - distance), -jnp.inf)
  push = jnp.where(negative, gamma * jax.nn.relu(1 + margin - distance) * (1 - margin - distance), -jnp.inf)
  loss = jax.nn.softplus(jax.nn.logsumexp(pull, axis=1) + jax.nn.logsumexp(push, axis=1))
  return jnp.sum(loss) / jnp.sum(loss > 0).astype(loss.dtype)


def _multi_similarity(e, labels, alpha=2.0, beta=50.0, base=0.5, epsilon=0.1):
  """Wang et al.'s loss with its mining, vectorised over anchors (every anchor has positives and negatives)."""
  s = _unit(e) @ _unit(e).T
  positives, negatives = _pair_masks(labels)
  hardest_positive = jnp.min(jnp.where(positives, s, jnp.inf), axis=1, keepdims=True)
  hardest_negative = jnp.max(jnp.where(negatives, s, -jnp.inf), axis=1, keepdims=True)
  negative = negatives & (s + epsilon > hardest_positive)
  positive = positives & (s - epsilon < hardest_negative)
  pull = jnp.log1p(jnp.sum(jnp.where(positive, jnp.exp(-alpha * (s - base)), 0), axis=1)) / alpha
  push = jnp.log1p(jnp.sum(jnp.where(negative, jnp.exp(beta * (s - base)), 0), axis=1)) / beta
  mined = jnp.any(positive, axis=1) & jnp.any(negative, axis=1)
  return jnp.mean(jnp.where(mined, pull + push, 0))


def _gram_distances(e):
  squares = jnp.sum(e * e, axis=1)
  return jnp.sqrt(jax.nn.relu(squares[:, None] + squares[None, :] - 2 * e @ e.T))


def _batch_hard(e, labels, margin=1.0):
  """Hermans et al.: per anchor, the farthest positive and the closest negative."""
  d = _gram_distances(e)
  positive, negative = _pair_masks(labels)
  farthest = jnp.max(jnp.where(positive, d, -jnp.inf), axis=1)
  closest = jnp.min(jnp.where(negative, d, jnp.inf), axis=1)
  return jnp.mean(jax.nn.relu(farthest - closest + margin))


def _batch_all(e, labels, margin=1.0):
  """Every triplet as a ``B x B x B`` array; the mean over the triplets with a positive loss."""
  d = _gram_distances(e)
  positive, negative = _pair_masks(labels)
  loss = jnp.where(positive[:, :, None] & negative[:, None, :], jax.nn.relu(d[:, :, None] - d[:, None, :] + margin), 0)
  return jnp.sum(loss) / jnp.sum(loss > 0).astype(loss.dtype)


def _pml_triplet(mining):
  """pytorch-metric-learning's triplet loss on ``(embeddings, labels)`` tensors, or None where it is not installed.

  ``"batch_all"``: every triplet, its default ``AvgNonZeroReducer`` (jaxloss's batch-all mean); ``"batch_hard"``:
  ``BatchHardMiner``'s triplets with a ``MeanReducer`` (jaxloss's mean over anchors).
  """
  if importlib.util.find_spec("pytorch_metric_learning") is None:
    return None

  def loss(e, labels):
    from pytorch_metric_learning import distances, losses, miners, reducers  # type: ignore[import-not-found]

    distance = distances.LpDistance(normalize_embeddings=False)  # the package normalises by default
    if mining == "batch_all":
      return losses.TripletMarginLoss(margin=1.0, distance=distance)(e, labels)
    triplets = miners.BatchHardMiner(distance=distance)(e, labels)
    return losses.TripletMarginLoss(margin=1.0, distance=distance, reducer=reducers.MeanReducer())(e, labels, triplets)

  return loss


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
  Case(
    "arcface", "representation", jl.arcface, _heads, jnp=in_float32(_arcface), diff=(0, 1), flops=_products(1), **SETS
  ),
  Case(
    "cosface", "representation", jl.cosface, _heads, jnp=in_float32(_cosface), diff=(0, 1), flops=_products(1), **SETS
  ),
  Case(  # the combined margin at its defaults (m1 = 1, m2 = 0.5, m3 = 0) is ArcFace's
    "angular_margin",
    "representation",
    jl.angular_margin,
    _heads,
    jnp=in_float32(_arcface),
    diff=(0, 1),
    flops=_products(1),
    **SETS,
  ),
  Case("circle", "representation", jl.circle, _labelled, jnp=in_float32(_circle), flops=_products(1), **SETS),
  Case(
    "multi_similarity",
    "representation",
    jl.multi_similarity,
    _labelled,
    jnp=in_float32(_multi_similarity),
    flops=_products(1),
    **SETS,
  ),
  Case(
    "batch_triplet-hard",
    "representation",
    functools.partial(jl.batch_triplet, mining="batch_hard"),
    _labelled,
    jnp=in_float32(_batch_hard),
    torch=_pml_triplet("batch_hard"),
    flops=_products(1),
    **SETS,
  ),
  # The plain batch-all expression holds B^3 floats: B = 256 is 64 MB per array already.
  Case(
    "batch_triplet",
    "representation",
    jl.batch_triplet,
    _labelled,
    jnp=in_float32(_batch_all),
    torch=_pml_triplet("batch_all"),
    sizes=((256, 64),),
    dtypes=("float32",),
    quick_sizes=((256, 64),),
    smoke_size=(8, 4),
  ),
]
