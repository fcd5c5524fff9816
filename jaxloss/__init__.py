"""jaxloss: loss functions for JAX with deliberate gradients.

Every loss is a pure, jit-compiled function ``jl.<name>(arrays..., *, options...)``
taking the shared ``reduction`` / ``weights`` / ``where`` keywords. Import only
from here: modules whose names start with ``_`` are private.
"""

from jaxloss._checked import checked
from jaxloss.embedding import contrastive, cosine_embedding, margin_ranking, ntxent, triplet_margin
from jaxloss.ranking import pairwise_hinge, pairwise_logistic, softmax_ranking
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
from jaxloss.sequence import ctc

__version__ = "0.1.0"

__all__ = (
  "checked",
  "contrastive",
  "cosine_embedding",
  "ctc",
  "gaussian_nll",
  "huber",
  "log_cosh",
  "mae",
  "mape",
  "margin_ranking",
  "mse",
  "msle",
  "ntxent",
  "pairwise_hinge",
  "pairwise_logistic",
  "poisson_nll",
  "quantile",
  "rmse",
  "smooth_l1",
  "softmax_ranking",
  "triplet_margin",
)
