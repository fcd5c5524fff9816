"""Differentiable surrogates of classification metrics: soft F-beta, a pairwise ROC-AUC surrogate and Smooth-AP.

Each loss is one minus a relaxed metric (or a convex bound on it), computed
over a *set* of predictions: :func:`soft_fbeta` over ``axis``,
:func:`auc_surrogate` and :func:`smooth_ap` over the last axis, a list of
``[..., L]`` scored items as in the ranking losses. ``where`` masks entries of
the first input (padding, examples left out), ``weights`` broadcast to the
per-set loss; a set with nothing to score (no valid entry, no (positive,
negative) pair, no positive) has loss 0 and is left out of the mean. Inputs
are computed in float32 at least (float16 and bfloat16 are promoted; float64
stays float64 when x64 is enabled).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _custom, _inputs, _reduce
from jaxloss._api import Numeric, Static, loss
from jaxloss.segmentation import _one_minus_ratio

_AVERAGES = ("binary", "micro", "macro")
_AUC_LOSSES = ("squared_hinge", "logistic", "square")


@loss
def soft_fbeta(
  probs: ArrayLike,
  targets: ArrayLike,
  *,
  beta: Numeric = 1.0,
  average: Static[str] = "binary",
  axis: Static[int | tuple[int, ...] | None] = None,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""One minus the soft F-beta score, from soft true positives, false positives and false negatives.

  .. math::
    \ell = 1 - \frac{(1 + \beta^2)\,\mathrm{TP}}{(1 + \beta^2)\,\mathrm{TP} + \beta^2\,\mathrm{FN} + \mathrm{FP}}, \quad
    \mathrm{TP} = \sum p t,\ \mathrm{FP} = \sum p (1 - t),\ \mathrm{FN} = \sum (1 - p) t

  ``average="binary"``: the sums run over ``axis``. ``"micro"``: the last axis
  holds classes (one-vs-rest probabilities) and the sums run over ``axis`` and
  the classes. ``"macro"``: one F-beta per class over ``axis``, the loss is one
  minus their mean. At ``beta = 1``, binary, this is exactly :func:`dice` with
  ``smooth=0`` (``2 TP / (2 TP + FP + FN)``).

  Args:
    probs: floating, predicted probabilities in ``[0, 1]``; ``[..., C]`` for
      ``"micro"`` and ``"macro"``.
    targets: same shape, in ``[0, 1]`` (usually 0/1).
    beta: ``beta >= 0`` and finite, the weight of recall (1: F1, 0:
      precision). May be traced (a 0-d array or tracer, differentiable); a
      traced negative or non-finite beta gives a meaningless value
      (:func:`jaxloss.checked` reports it).
    average: ``"binary"`` (default), ``"micro"`` or ``"macro"``, as
      scikit-learn's ``f1_score``.
    axis: the axes counted into one score: ``None`` (default) for every axis
      (``"binary"``) or every axis but the class axis (``"micro"``,
      ``"macro"``), or an int / tuple of ints (not the class axis).
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` over the scores.
    weights: optional per-score weights broadcastable to the shape of
      ``probs`` without ``axis`` (and the class axis).
    where: optional boolean mask of entries, broadcastable to ``probs``.

  Returns:
    A scalar, or the shape of ``probs`` without ``axis`` (and the class axis)
    for ``reduction="none"``, in ``[0, 1]``.

  Edges: smooth where the denominator ``beta^2 sum t + sum p`` is positive; a
  score with nothing predicted and nothing present is perfect (loss 0, zero
  gradient), as scikit-learn's ``zero_division=1``. Metric: F-beta (F1 at
  ``beta = 1``). Reference: Lipton, Elkan and Narayanaswamy, "Optimal
  Thresholding of Classifiers to Maximize F1 Measure", 2014; the soft counts
  of Milletari et al., "V-Net", 2016.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> print(jl.soft_fbeta(jnp.array([1.0, 1.0, 0.0, 0.0]), jnp.array([1.0, 0.0, 0.0, 0.0])))
    0.3333333
  """
  _checks.option("average", average, average in _AVERAGES, f"one of {', '.join(map(repr, _AVERAGES))}")
  p = _checks.floating("probs", probs)
  if average == "binary":
    axes = _checks.axis_tuple(axis, p.ndim)
  else:
    if p.ndim == 0:
      raise ValueError(f"{_checks.name()}: with `average={average!r}` `probs` must have a class axis, got a scalar.")
    axes = tuple(range(p.ndim - 1)) if axis is None else _checks.axis_tuple(axis, p.ndim)
    if p.ndim - 1 in axes:
      raise ValueError(f"{_checks.name()}: `axis`={axis!r} must not include the class axis (the last).")
  p, t, mask = _inputs.prepare(("probs", p, "floating"), ("targets", targets, "real"), where=where)
  _checks.debug_probabilities(probs=p, targets=t)
  beta = _inputs.number("beta", beta, p.dtype, lambda b: b >= 0, "a non-negative number")
  counted = axes + ((p.ndim - 1,) if average == "micro" else ())
  b2 = beta * beta
  overlap, sum_p, sum_t = (jnp.sum(a, axis=counted) for a in (p * t, p, t))
  per_score = _one_minus_ratio(jnp.multiply(1 + b2, overlap), jnp.add(jnp.multiply(b2, sum_t), sum_p))
  valid = None if mask is None else jnp.any(mask, axis=counted)
  if average == "macro":
    per_score = jnp.mean(per_score, axis=-1)
    valid = None if valid is None else jnp.any(valid, axis=-1)
  return _reduce.reduce(per_score, reduction=reduction, weights=weights, where=valid)


def _binary_lists(scores, labels, where) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """Promoted ``scores`` ``[..., L]``, and the valid positives (``labels > 0``) and valid negatives."""
  s, y, mask = _inputs.prepare(
    ("scores", scores, "floating"), ("labels", labels, "real"), where=where, of="`scores` (`where` masks list items)"
  )
  if s.ndim < 1:
    raise ValueError(f"{_checks.name()}: `scores` must have shape [..., L] (rank >= 1), got scores.shape={s.shape}.")
  valid = jnp.ones(s.shape, bool) if mask is None else mask
  return s, y, valid & (y > 0), valid & (y <= 0)


@loss
def auc_surrogate(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  loss: Static[str] = "squared_hinge",
  margin: Numeric = 1.0,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Pairwise surrogate of one minus ROC-AUC: the mean loss of each positive's score gap over each negative.

  .. math::
    \ell = \frac{1}{|P|\,|N|} \sum_{i \in P} \sum_{j \in N} \phi(m - (s_i - s_j)), \quad
    \phi(u) = \max(0, u)^2,\ \log(1 + e^{u}) \text{ or } u^2

  for ``loss="squared_hinge"``, ``"logistic"`` or ``"square"``, with ``P`` the
  valid items with ``labels > 0``, ``N`` the other valid items and ``m`` =
  ``margin``. 1 − AUC is the same mean with ``\phi(u) = [u > m]``.

  Args:
    scores: floating ``[..., L]``, one score per item of a list (a batch).
    labels: binary labels of the same shape, positive where ``> 0`` (any real
      dtype: 0/1 or -1/+1).
    loss: the pair loss ``phi``, ``"squared_hinge"`` (default), ``"logistic"``
      or ``"square"`` (computed in closed form from the means and variances of
      the positive and negative scores: ``O(L)`` memory instead of ``O(L^2)``).
    margin: the target score gap ``m``, finite (0 gives RankNet's logistic
      pair loss). May be traced (a 0-d array or tracer, differentiable); a
      traced non-finite margin gives a meaningless value
      (:func:`jaxloss.checked` reports it).
    reduction: ``"mean"`` (default, over lists with a (positive, negative)
      pair), ``"sum"`` or ``"none"``.
    weights: optional per-list weights broadcastable to ``[...]``.
    where: optional boolean item mask broadcastable to ``[..., L]``; a masked
      item takes part in no pair.

  Returns:
    A scalar, or ``[...]`` (one value per list) for ``reduction="none"``.

  Edges: ``"squared_hinge"`` and ``"square"`` are smooth, the squared hinge
  has gradient 0 at its kink; a list of only positives or only negatives has
  no pair: loss 0, gradient 0, left out of the mean. Metric: ROC-AUC
  (Wilcoxon-Mann-Whitney statistic). Reference: Yuan et al., "LibAUC: A Deep
  Learning Library for X-Risk Optimization", KDD 2023 (``PairwiseAUCLoss``);
  Gao and Zhou, "On the Consistency of AUC Pairwise Optimization", IJCAI 2015.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> print(jl.auc_surrogate(jnp.array([2.0, 0.0, 1.5]), jnp.array([1, 0, 0]), loss="square"))
    0.625
  """
  _checks.option("loss", loss, loss in _AUC_LOSSES, f"one of {', '.join(map(repr, _AUC_LOSSES))}")
  s, _, positive, negative = _binary_lists(scores, labels, where)
  margin = _inputs.number("margin", margin, s.dtype)
  n_pos, n_neg = (jnp.sum(m, axis=-1).astype(s.dtype) for m in (positive, negative))
  has_pair = (n_pos > 0) & (n_neg > 0)
  if loss == "square":
    # mean over pairs of (m - s_i + s_j)^2 = (m - mean_P + mean_N)^2 + var_P + var_N: no [L, L] array.
    mean_pos, mean_neg = (
      _reduce.safe_divide(jnp.sum(jnp.where(m, s, 0), -1), n) for m, n in ((positive, n_pos), (negative, n_neg))
    )
    var_pos, var_neg = (
      _reduce.safe_divide(jnp.sum(jnp.where(m, jnp.square(s - mu[..., None]), 0), -1), n)
      for m, mu, n in ((positive, mean_pos, n_pos), (negative, mean_neg, n_neg))
    )
    per_list = jnp.where(has_pair, jnp.square(margin - mean_pos + mean_neg) + var_pos + var_neg, 0)
  else:
    pair = positive[..., :, None] & negative[..., None, :]
    u = margin - (s[..., :, None] - s[..., None, :])
    phi = jnp.square(_custom.relu(u)) if loss == "squared_hinge" else jax.nn.softplus(u)
    per_list = _reduce.safe_divide(jnp.sum(jnp.where(pair, phi, 0), axis=(-2, -1)), n_pos * n_neg)
  return _reduce.reduce(per_list, reduction=reduction, weights=weights, where=has_pair)


@loss
def smooth_ap(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  temperature: Numeric = 0.01,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""One minus Smooth-AP: average precision with the ranks relaxed by a sigmoid of the score differences.

  .. math::
    \ell = 1 - \frac{1}{|P|} \sum_{i \in P}
      \frac{1 + \sum_{j \in P,\, j \ne i} \sigma\big((s_j - s_i)/\tau\big)}
           {1 + \sum_{j \ne i} \sigma\big((s_j - s_i)/\tau\big)}

  per list, with ``P`` the valid items with ``labels > 0``, the sums over valid
  items and ``tau`` = ``temperature``. As ``tau -> 0`` (and without tied
  scores) the ratio is the precision at each positive's rank and the loss one
  minus the exact average precision.

  Args:
    scores: floating ``[..., L]``, one score per list item (a query's
      retrieval list).
    labels: binary relevance of the same shape, relevant where ``> 0`` (any
      real dtype).
    temperature: ``tau > 0`` and finite, the sigmoid's width in score units.
      May be traced (a 0-d array or tracer, differentiable); a traced
      non-positive or non-finite temperature gives a meaningless value
      (:func:`jaxloss.checked` reports it).
    reduction: ``"mean"`` (default, over lists with a relevant item),
      ``"sum"`` or ``"none"``.
    weights: optional per-list weights broadcastable to ``[...]``.
    where: optional boolean item mask broadcastable to ``[..., L]``.

  Returns:
    A scalar, or ``[...]`` (one value per list) for ``reduction="none"``, in
    ``[0, 1)``.

  Edges: smooth; a tie counts half a rank (``sigma(0) = 1/2``). ``O(L^2)``
  memory per list. Metric: average precision (scikit-learn's
  ``average_precision_score``). Reference: Brown et al., "Smooth-AP:
  Smoothing the Path Towards Large-Scale Image Retrieval", ECCV 2020.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> print(jl.smooth_ap(jnp.array([2.0, 1.0, 0.0]), jnp.array([1, 0, 1]), temperature=1e-3))
    0.16666663
  """
  s, _, positive, negative = _binary_lists(scores, labels, where)
  temperature = _inputs.number("temperature", temperature, s.dtype, lambda t: t > 0, "a positive number")
  valid = positive | negative
  n = s.shape[-1]
  others = valid[..., None, :] & jnp.broadcast_to(~jnp.eye(n, dtype=bool), (*s.shape, n))
  above = jnp.where(others, jax.nn.sigmoid((s[..., None, :] - s[..., :, None]) / temperature), 0)  # [i, j]
  rank = 1 + jnp.sum(above, axis=-1)
  rank_among_positives = 1 + jnp.sum(jnp.where(positive[..., None, :], above, 0), axis=-1)
  n_pos = jnp.sum(positive, axis=-1).astype(s.dtype)
  precision = jnp.sum(jnp.where(positive, rank_among_positives / rank, 0), axis=-1)
  per_list = jnp.where(n_pos > 0, 1 - _reduce.safe_divide(precision, n_pos), 0)
  return _reduce.reduce(per_list, reduction=reduction, weights=weights, where=n_pos > 0)
