"""Registry cases for the segmentation losses: each example is a 3x4 image, overlap over axes (-2, -1)."""

import numpy as np

import jaxloss as jl
from registry import Case, Option

IMAGE = (3, 4)
AXES = (-2, -1)


def _masks(rng, batch):
  return rng.uniform(0.05, 0.95, size=(*batch, *IMAGE)), rng.choice([0.0, 1.0], size=(*batch, *IMAGE))


def _extremes(rng, batch):
  shape = (*batch, *IMAGE)
  t = rng.choice([0.0, 1.0], size=shape)
  return [
    (np.zeros(shape), np.zeros(shape)),  # nothing predicted, nothing there
    (np.zeros(shape), t),
    (np.ones(shape), t),
    (t, t.copy()),
    (np.full(shape, 1e-30), np.zeros(shape)),
  ]


def _extremes_unsmoothed(rng, batch):
  # Without smoothing the overlap ratio is singular at an empty prediction of an empty target: its
  # first derivatives stay finite next to it (1e-30), but its second derivatives grow like 1 / D**2.
  return _extremes(rng, batch)[:-1]


CASES = [
  Case(
    "dice",
    jl.dice,
    _masks,
    _extremes,
    kwargs={"axis": AXES},
    diff=(0, 1),
    options={"smooth": Option(0.8, invalid=-1.0)},
  ),
  Case("dice-smooth0", jl.dice, _masks, _extremes_unsmoothed, kwargs={"axis": AXES, "smooth": 0.0}, diff=(0, 1)),
  Case(
    "tversky",
    jl.tversky,
    _masks,
    _extremes,
    kwargs={"axis": AXES},
    diff=(0, 1),
    options={
      "alpha": Option(0.3, invalid=-1.0),
      "beta": Option(0.6, invalid=-1.0),
      "smooth": Option(0.5, invalid=-1.0),
    },
  ),
  Case(
    "tversky-alpha0.3-beta0.7-smooth0",
    jl.tversky,
    _masks,
    _extremes_unsmoothed,
    kwargs={"axis": AXES, "alpha": 0.3, "beta": 0.7, "smooth": 0.0},
    diff=(0, 1),
  ),
]
