"""Registry cases for the fused losses (custom_vjp: reverse mode only)."""

import numpy as np

import jaxloss as jl
from registry import Case, Option

D, V = 4, 7  # V is not a multiple of the chunk size below, so the short last block is covered.


def _tokens(rng, batch):
  """``hidden [*batch, D]``, a shared ``weight [V, D]`` and ``labels [*batch]``."""
  return rng.normal(size=(*batch, D)), rng.normal(size=(V, D)) / np.sqrt(D), rng.integers(0, V, size=batch)


def _extremes(rng, batch):
  hidden, weight, labels = _tokens(rng, batch)
  return [
    (np.full((*batch, D), 1e4), weight, labels),
    (np.full((*batch, D), -1e4), weight, labels),
    (np.full((*batch, D), 1e-30), weight, labels),
    (np.zeros((*batch, D)), weight, labels),  # every logit equal
    (hidden, 1e3 * weight, labels),
  ]


_BIAS = np.linspace(-1.0, 1.0, V)

CASES = [
  Case(
    "linear_cross_entropy",
    jl.linear_cross_entropy,
    _tokens,
    _extremes,
    kwargs={"chunk_size": 3},
    diff=(0, 1),
    forward_mode=False,
    shared=(1,),
  ),
  Case(
    "linear_cross_entropy-bias-smoothing-zloss-softcap",
    jl.linear_cross_entropy,
    _tokens,
    _extremes,
    kwargs={"chunk_size": 4, "bias": _BIAS},
    diff=(0, 1),
    forward_mode=False,
    shared=(1,),
    options={
      "label_smoothing": Option(0.1, invalid=1.5),
      "z_loss": Option(1e-2, invalid=-1.0),
      "softcap": Option(3.0, invalid=-1.0),
    },
  ),
]
