"""Registry cases for the metric surrogates: sets of 6 items (``[*batch, 6]``, with 3 classes for the macro
F-beta); ``where`` masks items of the first input."""

import numpy as np

import jaxloss as jl
from registry import Case, Option

L = 6  # items per set
C = 3


def _fbeta_classes(rng, batch):
  return rng.uniform(0.05, 0.95, size=(*batch, L, C)), rng.integers(0, 2, size=(*batch, L, C)).astype(float)


def _fbeta_extremes(make):
  def extremes(rng, batch):
    p, t = make(rng, batch)
    return [
      (np.zeros_like(p), np.zeros_like(t)),  # nothing predicted, nothing present: 0/0
      (np.ones_like(p), np.ones_like(t)),  # all positive
      (np.zeros_like(p), np.ones_like(t)),
      (np.ones_like(p), np.zeros_like(t)),  # all negative
      (np.full_like(p, 1e-30), t),
    ]

  return extremes


def _binary_lists(rng, batch):
  # Every list has positives and negatives.
  labels = rng.permuted(np.tile(np.array([1.0, 1.0, 0.0, 0.0, 0.0, 1.0]), (*batch, 1)), axis=-1)
  return rng.normal(size=(*batch, L)), labels


def _binary_extremes(rng, batch):
  s, y = _binary_lists(rng, batch)
  return [
    (np.zeros_like(s), y),  # ties everywhere
    (1e4 * s, y),
    (-1e4 * y, y),  # every pair misordered
    (y.copy(), y),  # gaps of exactly 1: the squared hinge's kink at margin 1
    (s, np.ones_like(y)),  # all positive: no pair
    (s, np.zeros_like(y)),  # all negative
    (np.full_like(s, 1e-30), y),
  ]


SETS = {"where_on_items": True, "separable": False}
CASES = [
  Case(
    "soft_fbeta-macro",
    jl.soft_fbeta,
    _fbeta_classes,
    _fbeta_extremes(_fbeta_classes),
    kwargs={"axis": -2, "average": "macro"},
    options={"beta": Option(1.5, invalid=-1.0)},
    **SETS,
  ),
  Case(
    "auc_surrogate",
    jl.auc_surrogate,
    _binary_lists,
    _binary_extremes,
    options={"margin": Option(0.7, invalid=np.inf)},
    **SETS,
  ),
  Case(
    "smooth_ap",
    jl.smooth_ap,
    _binary_lists,
    _binary_extremes,
    options={"temperature": Option(0.5, invalid=0.0)},
    **SETS,
  ),
]
