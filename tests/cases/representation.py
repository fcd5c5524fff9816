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
