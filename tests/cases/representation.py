"""Registry cases for the representation-learning losses (``jaxloss/representation.py``)."""

import numpy as np

import jaxloss as jl
from registry import Case, Option

D = 4  # embedding size
SET_LABELS = np.array([0, 0, 1, 1])  # each set: 4 members in two classes, one loss per member


def _pairs(rng, batch):
  x = rng.normal(size=(*batch, 4, D))
  return x, x + 0.5 * rng.normal(size=x.shape)


def _pair_extremes(rng, batch):
  x, y = _pairs(rng, batch)
  zeros = np.zeros_like(x)
  return [
    (zeros, y),  # zero embeddings
    (zeros, zeros),
    (x, x.copy()),
    (np.broadcast_to(x[..., :1, :], x.shape).copy(), y),  # every image equal
    (np.full_like(x, 1e4), y),
    (np.full_like(x, 1e-30), y),
  ]


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


SET = {"separable": False}
PAIRS = {"diff": (0, 1), "separable": False}
CASES = [
  Case(
    "clip",
    jl.clip,
    _pairs,
    _pair_extremes,
    options={"temperature": Option(0.5, invalid=0.0), "label_smoothing": Option(0.1, invalid=1.5)},
    **PAIRS,
  ),
  Case(
    "siglip",
    jl.siglip,
    _pairs,
    _pair_extremes,
    options={"temperature": Option(3.0, invalid=-1.0), "bias": Option(-2.0, invalid=np.inf)},
    **PAIRS,
  ),
  Case("supcon", jl.supcon, _sets, _set_extremes, options={"temperature": Option(0.5, invalid=0.0)}, **SET),
]

C = 3  # classes of the angular-margin heads


def _heads(rng, batch):
  return rng.normal(size=(*batch, D)), rng.normal(size=(C, D)), rng.integers(0, C, size=batch)


def _head_extremes(rng, batch):
  e, w, labels = _heads(rng, batch)
  return [
    (w[labels], w, labels),  # theta = 0: each embedding on its class centre
    (-w[labels], w, labels),  # theta = pi
    (np.zeros_like(e), w, labels),
    (e, np.zeros_like(w), labels),
    (np.full_like(e, 1e4), w, labels),
    (np.full_like(e, 1e-30), w, labels),
  ]


def _triplet_counts(margin, mining):
  """The per-anchor count the mean divides by: active triplets (batch_all) or positive pairs (semi_hard)."""

  def count(args):
    e, labels = (np.asarray(a) for a in args)
    d = np.linalg.norm(e[..., :, None, :] - e[..., None, :, :], axis=-1)
    same = labels[..., :, None] == labels[..., None, :]
    positive = same & ~np.eye(labels.shape[-1], dtype=bool)
    if mining == "semi_hard":
      return positive.sum(-1).astype(float)
    active = positive[..., :, :, None] & ~same[..., :, None, :] & (d[..., :, :, None] - d[..., :, None, :] + margin > 0)
    return active.sum((-1, -2)).astype(float)

  return count


HEAD = {"diff": (0, 1), "shared": (1,)}
CASES += [
  Case(
    "angular_margin",
    jl.angular_margin,
    _heads,
    _head_extremes,
    options={"scale": Option(4.0, invalid=0.0), "m1": Option(1.2), "m2": Option(0.3), "m3": Option(0.1)},
    **HEAD,
  ),
  Case(
    "arcface",
    jl.arcface,
    _heads,
    _head_extremes,
    options={"scale": Option(8.0, invalid=-1.0), "margin": Option(0.5)},
    **HEAD,
  ),
  Case(
    "cosface",
    jl.cosface,
    _heads,
    _head_extremes,
    options={"scale": Option(8.0, invalid=0.0), "margin": Option(0.35)},
    **HEAD,
  ),
  Case(
    "circle",
    jl.circle,
    _sets,
    _set_extremes,
    options={"margin": Option(0.25, invalid=np.inf), "gamma": Option(8.0, invalid=0.0)},
    **SET,
  ),
  Case(
    "multi_similarity",
    jl.multi_similarity,
    _sets,
    _set_extremes,
    options={
      "alpha": Option(2.0, invalid=0.0),
      "beta": Option(10.0, invalid=-1.0),
      "base": Option(0.5),
      "epsilon": Option(0.1, invalid=-1.0),
    },
    **SET,
  ),
  Case(
    "batch_triplet",
    jl.batch_triplet,
    _sets,
    _set_extremes,
    count_weights=_triplet_counts(1.0, "batch_all"),
    options={"margin": Option(1.0, invalid=-1.0)},
    **SET,
  ),
]
