"""jaxloss: loss functions for JAX with deliberate gradients.

Every loss is a pure, jit-compiled function ``jl.<name>(arrays..., *, options...)``
taking the shared ``reduction`` / ``weights`` / ``where`` keywords. Import only
from here: modules whose names start with ``_`` are private.
"""

from jaxloss import metrics, train
from jaxloss._checked import checked
from jaxloss.calibration import brier, confidence_penalty, entropy, mmce, soft_binned_ece
from jaxloss.classification import (
  binary_cross_entropy,
  binary_cross_entropy_with_logits,
  cross_entropy,
  hinge,
  hinge_embedding,
  multi_margin,
  multiclass_hinge,
  multilabel_margin,
  multilabel_soft_margin,
  nll,
  poly_cross_entropy,
  sigmoid_focal,
  soft_margin,
  softmax_focal,
  squared_hinge,
)
from jaxloss.divergence import js_divergence, kl_divergence
from jaxloss.embedding import contrastive, cosine_embedding, margin_ranking, ntxent, triplet_margin
from jaxloss.fused import linear_cross_entropy
from jaxloss.ranking import approx_ndcg, listmle, pairwise_hinge, pairwise_logistic, softmax_ranking
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
from jaxloss.representation import (
  angular_margin,
  arcface,
  batch_triplet,
  circle,
  clip,
  cosface,
  multi_similarity,
  siglip,
  supcon,
)
from jaxloss.segmentation import dice, tversky
from jaxloss.sequence import ctc
from jaxloss.surrogates import auc_surrogate, smooth_ap, soft_fbeta

__version__ = "0.1.0"

__all__ = (
  "angular_margin",
  "approx_ndcg",
  "arcface",
  "auc_surrogate",
  "batch_triplet",
  "binary_cross_entropy",
  "binary_cross_entropy_with_logits",
  "brier",
  "checked",
  "circle",
  "clip",
  "confidence_penalty",
  "contrastive",
  "cosface",
  "cosine_embedding",
  "cross_entropy",
  "ctc",
  "dice",
  "entropy",
  "gaussian_nll",
  "hinge",
  "hinge_embedding",
  "huber",
  "js_divergence",
  "kl_divergence",
  "linear_cross_entropy",
  "listmle",
  "log_cosh",
  "mae",
  "mape",
  "margin_ranking",
  "metrics",
  "mmce",
  "mse",
  "msle",
  "multi_margin",
  "multi_similarity",
  "multiclass_hinge",
  "multilabel_margin",
  "multilabel_soft_margin",
  "nll",
  "ntxent",
  "pairwise_hinge",
  "pairwise_logistic",
  "poisson_nll",
  "poly_cross_entropy",
  "quantile",
  "rmse",
  "siglip",
  "sigmoid_focal",
  "smooth_ap",
  "smooth_l1",
  "soft_binned_ece",
  "soft_fbeta",
  "soft_margin",
  "softmax_focal",
  "softmax_ranking",
  "squared_hinge",
  "supcon",
  "train",
  "triplet_margin",
  "tversky",
)
