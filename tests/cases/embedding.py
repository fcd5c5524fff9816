"""Registry cases for the metric-learning losses."""

import jax.numpy as jnp
import numpy as np

import jaxloss as jl
from registry import Case, Option

D = 4  # embedding size


def _signs(rng, shape):
  return np.where(rng.uniform(size=shape) < 0.5, -1.0, 1.0)


def _scores(rng, batch):
  return rng.normal(size=batch), rng.normal(size=batch), _signs(rng, batch)


def _scores_extremes(rng, batch):
  t = rng.normal(size=batch)
  y = _signs(rng, batch)
  return [
    (t, t.copy(), y),  # the kink at margin 0
    (np.full(batch, 1e4), np.full(batch, -1e4), y),
    (np.full(batch, 1e-30), np.zeros(batch), y),
  ]


def _triplets(rng, batch):
  anchor = rng.normal(size=(*batch, D))
  return anchor, anchor + 0.3 * rng.normal(size=(*batch, D)), rng.normal(size=(*batch, D))


def _triplet_extremes(rng, batch):
  a, p, n = _triplets(rng, batch)
  zeros = np.zeros((*batch, D))
  return [
    (a, a.copy(), n),  # anchor == positive
    (a, p, a.copy()),  # anchor == negative
    (zeros, zeros, zeros),
    (np.full_like(a, 1e4), np.full_like(a, -1e4), zeros),
    (np.full_like(a, 1e-30), zeros, np.full_like(a, -1e-30)),
  ]


def _pairs(rng, batch):
  return rng.normal(size=(*batch, D)), rng.normal(size=(*batch, D)), rng.integers(0, 2, size=batch).astype(float)


def _pair_extremes(rng, batch):
  x1, _, y = _pairs(rng, batch)
  zeros = np.zeros_like(x1)
  unit = np.zeros_like(x1)
  unit[..., 0] = 1.0
  return [
    (x1, x1.copy(), y),  # x1 == x2
    (zeros, zeros, y),
    (x1, x1 + unit, y),  # distance == margin (1.0): the contrastive hinge's kink
    (np.full_like(x1, 1e4), zeros, y),
    (np.full_like(x1, 1e-30), zeros, y),
  ]


def _cosine_pairs(rng, batch):
  return rng.normal(size=(*batch, D)), rng.normal(size=(*batch, D)), _signs(rng, batch)


def _cosine_extremes(rng, batch):
  x1, x2, y = _cosine_pairs(rng, batch)
  zeros = np.zeros_like(x1)
  return [
    (zeros, x2, y),  # a zero vector
    (zeros, zeros, y),
    (x1, x1.copy(), y),
    (x1, -x1, y),
    (np.full_like(x1, 1e4), x2, y),
    (np.full_like(x1, 1e-30), x2, y),
  ]


# Each batch entry is a set of 4 embeddings in two positive pairs: one loss per embedding.
SET_LABELS = np.array([0, 0, 1, 1])


def _sets(rng, batch):
  return rng.normal(size=(*batch, 4, D)), np.broadcast_to(SET_LABELS, (*batch, 4)).copy()


def _set_extremes(rng, batch):
  e, labels = _sets(rng, batch)
  return [
    (np.zeros_like(e), labels),
    (np.full_like(e, 1e4), labels),
    (np.full_like(e, 1e-30), labels),
    (np.broadcast_to(e[..., :1, :], e.shape).copy(), labels),  # every embedding equal
  ]


def cosine_distance(x, y):
  """A distance for ``triplet_margin(distance_fn=...)``: one module-level object, so no retracing."""
  return 1.0 - jnp.sum(x * y, axis=-1) / jnp.sqrt(jnp.sum(x * x, axis=-1) * jnp.sum(y * y, axis=-1) + 1e-12)


TRIPLET = {"diff": (0, 1, 2)}
CASES = [
  Case(
    "margin_ranking",
    jl.margin_ranking,
    _scores,
    _scores_extremes,
    diff=(0, 1),
    options={"margin": Option(0.3, invalid=np.inf)},
  ),
  Case(
    "triplet_margin",
    jl.triplet_margin,
    _triplets,
    _triplet_extremes,
    options={"margin": Option(0.8, invalid=-1.0), "eps": Option(0.05, invalid=-1.0)},
    **TRIPLET,
  ),
  Case("triplet_margin-p1", jl.triplet_margin, _triplets, _triplet_extremes, kwargs={"p": 1.0}, **TRIPLET),
  Case(
    "triplet_margin-p3-swap",
    jl.triplet_margin,
    _triplets,
    _triplet_extremes,
    kwargs={"p": 3.0, "swap": True},
    **TRIPLET,
  ),
  Case(
    "triplet_margin-distance_fn",
    jl.triplet_margin,
    _triplets,
    _triplet_extremes,
    kwargs={"distance_fn": cosine_distance, "margin": 0.5},
    **TRIPLET,
  ),
  Case(
    "contrastive", jl.contrastive, _pairs, _pair_extremes, diff=(0, 1), options={"margin": Option(1.3, invalid=-1.0)}
  ),
  Case(
    "cosine_embedding",
    jl.cosine_embedding,
    _cosine_pairs,
    _cosine_extremes,
    diff=(0, 1),
    options={"margin": Option(0.2, invalid=1.5)},
  ),
  Case("ntxent", jl.ntxent, _sets, _set_extremes, separable=False, options={"temperature": Option(0.5, invalid=0.0)}),
]
