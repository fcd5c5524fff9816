"""Registry cases for the calibration losses.

Per-example losses get logits ``[*batch, C]`` and integer labels ``[*batch]``
(the binary Brier score is tested in test_calibration.py). The set losses (``soft_binned_ece``,
``mmce``) get sets of ``N`` examples, ``[*batch, N, C]`` and ``[*batch, N]``;
``where`` masks examples of a set (the labels' shape).
"""

import numpy as np

import jaxloss as jl
from registry import Case, Option

C = 4
N = 6  # examples per set


def _logits(rng, batch):
  return rng.normal(size=(*batch, C)) * 2, rng.integers(0, C, size=batch)


def _class_extremes(rng, batch, *, shape=None):
  shape = batch if shape is None else shape
  y = rng.integers(0, C, size=shape)
  one_hot = np.eye(C)[y] > 0
  signs = rng.choice([-1.0, 1.0], size=(*shape, C))
  x = rng.normal(size=(*shape, C))
  return [
    (1e4 * signs, y),
    (np.where(one_hot, 1e4, 0.0), y),  # confident and right
    (np.where(one_hot, -1e4, 0.0), y),  # confident and wrong
    (np.zeros((*shape, C)), y),  # every class tied
    (np.where(one_hot | (np.arange(C) == (y[..., None] + 1) % C), x, -np.inf), y),  # -inf classes
    (np.full((*shape, C), 1e-30), y),
  ]


def _sets(rng, batch):
  return rng.normal(size=(*batch, N, C)) * 2, rng.integers(0, C, size=(*batch, N))


def _set_extremes(rng, batch):
  out = _class_extremes(rng, batch, shape=(*batch, N))
  x, y = _sets(rng, batch)
  equal = np.broadcast_to(x[..., :1, :], x.shape).copy()  # every example of a set with the same confidence
  return [*out, (equal, y)]


SETS = {"where_on_items": True, "items": 1, "separable": False}
CASES = [
  Case("brier", jl.brier, _logits, _class_extremes),
  Case(
    "entropy",
    jl.entropy,
    lambda rng, batch: (_logits(rng, batch)[0],),
    lambda r, b: [(x,) for x, _ in _class_extremes(r, b)],
  ),
  Case(
    "confidence_penalty",
    jl.confidence_penalty,
    _logits,
    _class_extremes,
    options={"beta": Option(0.3, invalid=-1.0)},
  ),
  Case(
    "soft_binned_ece",
    jl.soft_binned_ece,
    _sets,
    _set_extremes,
    kwargs={"bins": 5},
    options={"temperature": Option(0.05, invalid=0.0)},
    **SETS,
  ),
  Case("mmce", jl.mmce, _sets, _set_extremes, options={"bandwidth": Option(0.4, invalid=0.0)}, **SETS),
]
