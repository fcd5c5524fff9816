"""Registry cases for the ranking losses: lists of 5 items, ``where`` masks items."""

import numpy as np

import jaxloss as jl
from registry import Case, Option

L = 5  # list size


def _lists(rng, batch):
  # Distinct graded labels: every list has pairs to rank and a relevant item.
  labels = np.argsort(rng.uniform(size=(*batch, L)), axis=-1).astype(float)
  return rng.normal(size=(*batch, L)), labels


def _list_extremes(rng, batch):
  scores, labels = _lists(rng, batch)
  return [
    (np.zeros_like(scores), labels),  # ties everywhere
    (labels.copy(), labels),  # score gaps of exactly 1: the hinge's kink at margin 1
    (1e4 * scores, labels),
    (np.full_like(scores, 1e-30), labels),
    (-1e4 * labels, labels),  # every pair badly misordered
  ]


LISTS = {"where_on_items": True, "separable": False}
CASES = [
  Case(
    "pairwise_hinge",
    jl.pairwise_hinge,
    _lists,
    _list_extremes,
    options={"margin": Option(0.7, invalid=np.inf)},
    **LISTS,
  ),
  Case("pairwise_logistic", jl.pairwise_logistic, _lists, _list_extremes, **LISTS),
  Case("softmax_ranking", jl.softmax_ranking, _lists, _list_extremes, **LISTS),
]

CASES += [
  Case(
    "approx_ndcg",  # without k: with it the cutoff point is a constant for the gradient (rax), not the derivative
    jl.approx_ndcg,
    _lists,
    _list_extremes,
    options={"temperature": Option(0.5, invalid=0.0)},
    **LISTS,
  ),
  Case("listmle", jl.listmle, _lists, _list_extremes, **LISTS),
]
