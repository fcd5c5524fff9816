"""jaxloss: loss functions for JAX with deliberate gradients.

Every loss is a pure, jit-compiled function ``jl.<name>(arrays..., *, options...)``
taking the shared ``reduction`` / ``weights`` / ``where`` keywords. Import only
from here: modules whose names start with ``_`` are private.
"""

from jaxloss import train
from jaxloss._checked import checked
from jaxloss.regression import (
  gaussian_nll,
  huber,
  log_cosh,
  mae,
  mape,
  mse,
  msle,
  poisson_nll,
  quantile,
  rmse,
  smooth_l1,
)

__version__ = "0.1.0"

__all__ = (
  "checked",
  "gaussian_nll",
  "huber",
  "log_cosh",
  "mae",
  "mape",
  "mse",
  "msle",
  "poisson_nll",
  "quantile",
  "rmse",
  "smooth_l1",
  "train",
)
