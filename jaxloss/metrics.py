"""Exact evaluation metrics: what the losses stand in for.

Accuracy, precision, recall and F-beta, ROC-AUC and average precision, NDCG,
MRR and precision@k, the expected and maximum calibration errors and the
reliability curve. They are not losses: each is a step function of the scores
(or, for the calibration errors, of binned confidences), so **no gradient is
promised** (``jax.grad`` gives 0 almost everywhere, or an arbitrary value at a
step). Train on a surrogate (cross-entropy, ``jl.dice``, the ranking losses)
and report these.

Every metric is jit-compiled through the same decorator as the losses
(structural options such as ``k``, ``bins`` and ``average`` are fixed at
compile time), takes ``where`` (a boolean mask: masked examples, or list items
for the ranking metrics, are left out entirely) and ``weights`` (per-example or
per-list weights, scikit-learn's ``sample_weight``), and returns a scalar in
float32 (float64 when a floating input is float64, or for integer inputs when
x64 is enabled). Each matches scikit-learn's function, or an exhaustive NumPy
reference where scikit-learn has none; the docstrings state the tie rule.
An unmasked NaN score gives NaN in :func:`roc_auc`, :func:`average_precision` and the ranking metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, ParamSpec, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxloss import _checks, _inputs, _reduce
from jaxloss._api import Numeric, Static, loss

P = ParamSpec("P")
R = TypeVar("R")

__all__ = (
  "ReliabilityCurve",
  "accuracy",
  "average_precision",
  "expected_calibration_error",
  "fbeta",
  "max_calibration_error",
  "mrr",
  "ndcg",
  "precision",
  "precision_at_k",
  "recall",
  "reliability_curve",
  "roc_auc",
)


def _metric(fn: Callable[P, R]) -> Callable[P, R]:
  """Compile a metric with the losses' decorator; its messages name it ``jaxloss.metrics.<name>``."""
  return loss(fn, public_name=f"jaxloss.metrics.{fn.__name__}")


def _float_dtype(*arrays: jax.Array) -> np.dtype:
  """float64 if a floating input is float64, or if all are integers and x64 is enabled; float32 otherwise."""
  floating = [a for a in arrays if jnp.issubdtype(a.dtype, jnp.floating)]
  if floating:
    return _checks.compute_dtype(*floating)
  return np.dtype(jax.dtypes.canonicalize_dtype(np.float64))


def _counts(shape, dtype, where, weights, of: str) -> tuple[jax.Array, jax.Array]:
  """``(mask, weight)``: the boolean mask of ``shape`` (all True without ``where``) and each entry's weight
  (``weights`` or 1, exactly 0 where masked)."""
  m = _inputs.mask(where, shape, of)
  m = jnp.ones(shape, bool) if m is None else m
  w = _inputs.weights(weights, shape, dtype, of)
  w = jnp.ones(shape, dtype) if w is None else w
  return m, jnp.where(m, w, jnp.zeros((), dtype))


def _positive_int(arg: str, value, expected: str = "a positive int") -> int:
  if not _checks.is_int(value) or value < 1:
    raise ValueError(f"{_checks.name()}: `{arg}` must be {expected}, got {value!r}.")
  return int(value)


def _nan_where_nan(value: jax.Array, scores: jax.Array, mask: jax.Array, axis=None) -> jax.Array:
  """``value``, or NaN where an unmasked score is NaN."""
  bad = jnp.any(jnp.isnan(scores) & mask, axis=axis)
  return jnp.where(bad, jnp.asarray(jnp.nan, value.dtype), value)


def _below_and_tied(scores: jax.Array, *weights: jax.Array):
  """Ascending order along the last axis and, per item in that order, each weight summed over the items scoring
  strictly lower and over those tied with it (itself included).

  Returns ``(sorted weights, [(below, tied) for each weight])``; the sums are over the sorted items, which is
  all the metrics need. Ties are found by sorting (O(L log L)), not by comparing all pairs.
  """
  n = scores.shape[-1]
  order = jnp.argsort(scores, axis=-1)
  s = jnp.take_along_axis(scores, order, axis=-1)
  index = jnp.broadcast_to(jnp.arange(n), s.shape)
  differs = s[..., 1:] != s[..., :-1]
  edge = jnp.ones((*s.shape[:-1], 1), bool)
  first = jax.lax.cummax(jnp.where(jnp.concatenate([edge, differs], -1), index, 0), axis=s.ndim - 1)
  last = jax.lax.cummin(jnp.where(jnp.concatenate([differs, edge], -1), index, n - 1), axis=s.ndim - 1, reverse=True)
  sorted_weights, sums = [], []
  for w in weights:
    w = jnp.take_along_axis(w, order, axis=-1)
    before = jnp.cumsum(w, axis=-1) - w  # exclusive running sum
    below = jnp.take_along_axis(before, first, axis=-1)
    tied = jnp.take_along_axis(before + w, last, axis=-1) - below
    sorted_weights.append(w)
    sums.append((below, tied))
  return sorted_weights, sums


# Classification ----------------------------------------------------------------------------------


@_metric
def accuracy(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  k: Static[int] = 1,
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Top-k accuracy: the fraction of examples whose label is among their ``k`` highest-scoring classes.

  .. math::
    \text{accuracy@}k = \frac{\sum_n w_n\,[\operatorname{rank}_n(y_n) < k]}{\sum_n w_n},\qquad
    \operatorname{rank}_n(c) = \#\{j : s_{nj} > s_{nc}\} + \#\{j < c : s_{nj} = s_{nc}\}

  Args:
    scores: floating ``[..., C]`` class scores (logits or probabilities).
    labels: integer class labels ``[...]``; a label outside ``[0, C)`` is never a hit.
    k: how many top classes count (``k=1`` is plain accuracy of the argmax).
    weights: optional per-example weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``: False leaves the example out.

  Returns:
    A scalar in ``[0, 1]``; 0 when no example is left.

  Ties: a tie between class scores ranks the lower class index first, as ``jnp.argmax`` and
  ``jax.lax.top_k`` do (scikit-learn's ``top_k_accuracy_score`` ranks the higher index first).

  Matches: ``sklearn.metrics.accuracy_score(labels, scores.argmax(-1))`` for ``k=1``, and
  ``sklearn.metrics.top_k_accuracy_score`` (with the tie rule above).

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxloss import metrics
    >>> scores = jnp.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]])
    >>> print(metrics.accuracy(scores, jnp.array([1, 2])), metrics.accuracy(scores, jnp.array([1, 2]), k=3))
    0.5 1.0
  """
  s = _inputs.scores("scores", scores)
  top = _positive_int("k", k)
  y = _inputs.class_labels("scores", s, labels, where)
  _checks.debug_no_nan(scores=s)
  true = jnp.take_along_axis(s, y.index[..., None], axis=-1)
  classes = jnp.broadcast_to(jnp.arange(s.shape[-1]), s.shape)
  ahead = (s > true) | ((s == true) & (classes < y.index[..., None]))
  hit = (jnp.sum(ahead, axis=-1) < top) & y.in_range
  return _reduce.reduce(hit.astype(_checks.compute_dtype(s)), reduction="mean", weights=weights, where=y.mask)


AVERAGES = ("binary", "micro", "macro")


def _confusion(predictions, labels, average, num_classes, weights, where):
  """``(tp, predicted, actual, present)`` totals: scalars for "binary", per class ``[C]`` otherwise."""
  _checks.option(
    "average", average, isinstance(average, str) and average in AVERAGES, "one of " + ", ".join(map(repr, AVERAGES))
  )
  kind = _checks.real if average == "binary" else _checks.integer
  pred, true = kind("predictions", predictions), kind("labels", labels)
  _checks.same_shape(("predictions", pred), ("labels", true))
  dtype = _float_dtype(pred, true)
  m, w = _counts(pred.shape, dtype, where, weights, "`predictions`")
  if average == "binary":
    if num_classes is not None:
      raise ValueError(f"{_checks.name()}: `num_classes` is for average='micro' or 'macro', got {num_classes!r}.")
    for arg, x in (("predictions", pred), ("labels", true)):
      _checks.debug_values(arg, x, lambda x=x: (x == 0) | (x == 1) | ~m, "0 or 1 (average='binary')")
    pred_pos, true_pos = pred.astype(dtype) == 1, true.astype(dtype) == 1
    tp, predicted, actual = (jnp.sum(jnp.where(c, w, 0)) for c in (pred_pos & true_pos, pred_pos, true_pos))
    return tp, predicted, actual, None
  if num_classes is None:
    raise ValueError(f"{_checks.name()}: `num_classes` is required for average={average!r}, got None.")
  num_classes = _positive_int("num_classes", num_classes)
  for arg, x in (("predictions", pred), ("labels", true)):
    _checks.debug_values(arg, x, lambda x=x: ((x >= 0) & (x < num_classes)) | ~m, f"in [0, {num_classes})")
  classes = jnp.broadcast_to(jnp.arange(num_classes), (*pred.shape, num_classes))
  pred_is, true_is = pred[..., None] == classes, true[..., None] == classes
  axes = tuple(range(pred.ndim))
  per_class = lambda c: jnp.sum(jnp.where(c, w[..., None], 0), axis=axes)
  present = jnp.any((pred_is | true_is) & m[..., None], axis=axes)
  return per_class(pred_is & true_is), per_class(pred_is), per_class(true_is), present


def _average(per_class: jax.Array, present) -> jax.Array:
  """The macro mean over the classes present in ``labels`` or ``predictions`` (the scalar itself otherwise)."""
  if present is None:
    return per_class
  return _reduce.safe_divide(jnp.sum(jnp.where(present, per_class, 0)), jnp.sum(present, dtype=per_class.dtype))


def _totals(counts: tuple, average: str):
  """Micro averaging sums the per-class counts; binary and macro keep them."""
  if average == "micro":
    return (*(jnp.sum(c) for c in counts[:3]), None)
  return counts


@_metric
def precision(
  predictions: ArrayLike,
  labels: ArrayLike,
  *,
  average: Static[str] = "binary",
  num_classes: Static[int | None] = None,
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Precision: the fraction of predicted positives that are positive.

  .. math::
    \text{precision} = \frac{TP}{TP + FP}

  Args:
    predictions: predicted labels ``[...]``: 0/1 (or bool) for ``average="binary"``, integer classes in
      ``[0, num_classes)`` otherwise. Threshold scores first, e.g. ``logits > 0``.
    labels: true labels of the same shape and kind.
    average: ``"binary"`` (default: class 1 is the positive class), ``"micro"`` (the counts pooled over
      classes: for single-label data precision = recall = F = accuracy) or ``"macro"`` (the unweighted mean
      over the classes present in ``labels`` or ``predictions``, as scikit-learn's default ``labels=None``).
    num_classes: the number of classes, required for ``"micro"`` and ``"macro"`` (None for ``"binary"``).
    weights: optional per-example weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``: False leaves the example out.
  Returns:
    A scalar in ``[0, 1]``; 0 where ``TP + FP = 0`` (scikit-learn's ``zero_division`` default).

  Matches: ``sklearn.metrics.precision_score(labels, predictions, average=average)``.

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxloss import metrics
    >>> print(metrics.precision(jnp.array([1, 1, 0, 1]), jnp.array([1, 0, 0, 1])))
    0.6666667
  """
  tp, predicted, _, present = _totals(_confusion(predictions, labels, average, num_classes, weights, where), average)
  return _average(_reduce.safe_divide(tp, predicted), present)


@_metric
def recall(
  predictions: ArrayLike,
  labels: ArrayLike,
  *,
  average: Static[str] = "binary",
  num_classes: Static[int | None] = None,
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Recall: the fraction of positives that are predicted positive.

  .. math::
    \text{recall} = \frac{TP}{TP + FN}

  Args:
    predictions: predicted labels ``[...]``: 0/1 (or bool) for ``average="binary"``, integer classes in
      ``[0, num_classes)`` otherwise. Threshold scores first, e.g. ``logits > 0``.
    labels: true labels of the same shape and kind.
    average: ``"binary"`` (default: class 1 is the positive class), ``"micro"`` (the counts pooled over
      classes: for single-label data precision = recall = F = accuracy) or ``"macro"`` (the unweighted mean
      over the classes present in ``labels`` or ``predictions``, as scikit-learn's default ``labels=None``).
    num_classes: the number of classes, required for ``"micro"`` and ``"macro"`` (None for ``"binary"``).
    weights: optional per-example weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``: False leaves the example out.
  Returns:
    A scalar in ``[0, 1]``; 0 where ``TP + FN = 0`` (scikit-learn's ``zero_division`` default).

  Matches: ``sklearn.metrics.recall_score(labels, predictions, average=average)``.

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxloss import metrics
    >>> print(metrics.recall(jnp.array([1, 1, 0, 1]), jnp.array([1, 0, 0, 1])))
    1.0
  """
  tp, _, actual, present = _totals(_confusion(predictions, labels, average, num_classes, weights, where), average)
  return _average(_reduce.safe_divide(tp, actual), present)


@_metric
def fbeta(
  predictions: ArrayLike,
  labels: ArrayLike,
  *,
  beta: Numeric = 1.0,
  average: Static[str] = "binary",
  num_classes: Static[int | None] = None,
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""F-beta score: the weighted harmonic mean of precision and recall (F1 for ``beta=1``).

  .. math::
    F_\beta = \frac{(1 + \beta^2)\,TP}{(1 + \beta^2)\,TP + \beta^2 FN + FP}

  Args:
    predictions: predicted labels ``[...]``: 0/1 (or bool) for ``average="binary"``, integer classes in
      ``[0, num_classes)`` otherwise. Threshold scores first, e.g. ``logits > 0``.
    labels: true labels of the same shape and kind.
    beta: recall counts ``beta`` times as much as precision (``beta=1``: F1; ``beta=0``: precision). A
      finite number >= 0. May be traced (a 0-d array or tracer); a traced negative or NaN ``beta`` gives a
      meaningless value (:func:`jaxloss.checked` reports it).
    average: ``"binary"`` (default: class 1 is the positive class), ``"micro"`` (the counts pooled over
      classes: for single-label data precision = recall = F = accuracy) or ``"macro"`` (the unweighted mean
      over the classes present in ``labels`` or ``predictions``, as scikit-learn's default ``labels=None``).
    num_classes: the number of classes, required for ``"micro"`` and ``"macro"`` (None for ``"binary"``).
    weights: optional per-example weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``: False leaves the example out.
  Returns:
    A scalar in ``[0, 1]``; 0 where the denominator is 0 (scikit-learn's ``zero_division`` default).

  Matches: ``sklearn.metrics.fbeta_score(labels, predictions, beta=beta, average=average)`` and ``f1_score``.
  ``jl.dice`` and ``soft_fbeta`` are its differentiable surrogates.

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxloss import metrics
    >>> print(metrics.fbeta(jnp.array([1, 1, 0, 1]), jnp.array([1, 0, 0, 1])))
    0.8
  """
  tp, predicted, actual, present = _totals(
    _confusion(predictions, labels, average, num_classes, weights, where), average
  )
  b2 = jnp.square(_inputs.number("beta", beta, tp.dtype, lambda b: b >= 0, "a finite number >= 0"))
  return _average(_reduce.safe_divide((1 + b2) * tp, b2 * actual + predicted), present)


def _binary_scores(scores, labels, weights, where):
  """Flattened ``(scores, positive weight, negative weight, mask)``; masked entries have weight 0 and score 0."""
  s, y, m = _inputs.prepare(("scores", scores, "floating"), ("labels", labels, "real"), where=where)
  m, w = _counts(s.shape, s.dtype, m, weights, "`scores`")
  positive = y > 0
  zero = jnp.zeros((), s.dtype)
  return s.ravel(), jnp.where(positive, w, zero).ravel(), jnp.where(positive, zero, w).ravel(), m.ravel()


@_metric
def roc_auc(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Area under the ROC curve: the probability that a positive outscores a negative, ties counting 1/2.

  .. math::
    \text{AUC} = \frac{\sum_{i \in +} \sum_{j \in -} w_i w_j \big([s_i > s_j] + \tfrac12 [s_i = s_j]\big)}
      {\sum_{i \in +} w_i \sum_{j \in -} w_j}

  Args:
    scores: floating ``[...]``, higher means more likely positive (logits or probabilities).
    labels: labels of the same shape; ``labels > 0`` is the positive class (0/1, bool or -1/+1).
    weights: optional per-example weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``: False leaves the example out.

  Returns:
    A scalar in ``[0, 1]``; NaN when the examples left hold only one class (scikit-learn raises).

  Ties: a tied (positive, negative) pair counts 1/2, which is the trapezoidal area scikit-learn computes.
  O(N log N) (one sort), not O(N^2).

  Matches: ``sklearn.metrics.roc_auc_score(labels > 0, scores, sample_weight=weights)``. The pairwise
  ranking losses and ``auc_surrogate`` are its differentiable surrogates.

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxloss import metrics
    >>> print(metrics.roc_auc(jnp.array([0.9, 0.4, 0.4, 0.1]), jnp.array([1, 1, 0, 0])))
    0.875
  """
  s, wp, wn, m = _binary_scores(scores, labels, weights, where)
  if s.size == 0:
    return jnp.asarray(jnp.nan, s.dtype)
  (wp, _), [_, (neg_below, neg_tied)] = _below_and_tied(s, wp, wn)
  pairs = jnp.sum(wp * (neg_below + neg_tied / 2))
  total = jnp.sum(wp) * jnp.sum(wn)
  auc = pairs / jnp.where(total != 0, total, jnp.nan)
  return _nan_where_nan(auc, s, m)


@_metric
def average_precision(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Average precision: the precision at each threshold, weighted by the recall it adds.

  .. math::
    \text{AP} = \sum_t (R_t - R_{t-1})\, P_t

  over the distinct score values ``t`` in decreasing order, with ``P_t`` and ``R_t`` the precision and recall
  of predicting positive where ``s >= t``.

  Args:
    scores: floating ``[...]``, higher means more likely positive (logits or probabilities).
    labels: labels of the same shape; ``labels > 0`` is the positive class (0/1, bool or -1/+1).
    weights: optional per-example weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``: False leaves the example out.

  Returns:
    A scalar in ``[0, 1]``; 0 when no positive is left (as scikit-learn).

  Ties: tied scores form one threshold (scikit-learn's step function over distinct thresholds, no
  interpolation): every positive of a tie group gets the precision of the whole group.

  Matches: ``sklearn.metrics.average_precision_score(labels > 0, scores, sample_weight=weights)``.
  ``smooth_ap`` is its differentiable surrogate.

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxloss import metrics
    >>> print(metrics.average_precision(jnp.array([0.9, 0.8, 0.4, 0.1]), jnp.array([1, 0, 1, 0])))
    0.8333334
  """
  s, wp, wn, m = _binary_scores(scores, labels, weights, where)
  if s.size == 0:
    return jnp.zeros((), s.dtype)
  (wp, _), [(pos_below, _), (neg_below, _)] = _below_and_tied(s, wp, wn)
  positives = jnp.sum(wp)
  true_positive = positives - pos_below  # at the threshold of each item's tie group: s >= t
  predicted = true_positive + jnp.sum(wn) - neg_below
  ap = _reduce.safe_divide(jnp.sum(wp * _reduce.safe_divide(true_positive, predicted)), positives)
  return _nan_where_nan(ap, s, m)


# Ranking -----------------------------------------------------------------------------------------


def _lists(scores, labels, where):
  """``(scores, labels, item mask)`` of ``[..., L]`` lists; masked items are zeroed."""
  s, y, m = _inputs.prepare(
    ("scores", scores, "floating"), ("labels", labels, "real"), where=where, of="`scores` (`where` masks list items)"
  )
  if s.ndim < 1:
    raise ValueError(f"{_checks.name()}: `scores` must have shape [..., L] (rank >= 1), got scores.shape={s.shape}.")
  m = jnp.ones(s.shape, bool) if m is None else m
  return s, y, m


def _list_mean(per_list: jax.Array, s, m, weights) -> jax.Array:
  """The (weighted) mean over the lists with at least one item left; NaN scores give NaN."""
  per_list = _nan_where_nan(per_list, s, m, axis=-1)
  return _reduce.reduce(per_list, reduction="mean", weights=weights, where=jnp.any(m, axis=-1), of="the lists")


def _descending(s, m, values):
  """In ascending score order: ``(item mask, values, items scoring higher, items tied)``, over unmasked items."""
  (valid, values), [(below, tied), _] = _below_and_tied(s, m.astype(s.dtype), values)
  return valid, values, jnp.sum(valid, axis=-1, keepdims=True) - below - tied, tied


@_metric
def ndcg(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  k: Static[int | None] = None,
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Normalised discounted cumulative gain at ``k``: the DCG of the ranking over that of the ideal ranking.

  .. math::
    \text{DCG@}k = \sum_{r < k} \frac{y_{\pi(r)}}{\log_2(r + 2)},\qquad
    \text{NDCG@}k = \frac{\text{DCG@}k(s)}{\text{DCG@}k(y)}

  with ``\pi`` the items by decreasing score and linear gains (the labels themselves).

  Args:
    scores: floating ``[..., L]``: one score per list item, leading axes are lists.
    labels: non-negative relevance labels of the same shape (any real dtype).
    k: the number of top positions counted (None: all).
    weights: optional per-list weights broadcastable to ``[...]``.
    where: optional boolean item mask broadcastable to ``[..., L]``: masked items leave the list.

  Returns:
    A scalar in ``[0, 1]``: the mean over the lists with at least one item left. A list whose labels are all 0
    scores 0 and counts in the mean (as scikit-learn).

  Ties: tied items share their positions' discounts equally (the tie-averaged DCG of McSherry and Najork,
  ECIR 2008, scikit-learn's default ``ignore_ties=False``): the expected DCG over random tie-breaking.

  Matches: ``sklearn.metrics.ndcg_score(labels, scores, k=k, sample_weight=weights)``. ``approx_ndcg`` is its
  differentiable surrogate.

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxloss import metrics
    >>> print(metrics.ndcg(jnp.array([0.1, 0.9, 0.5]), jnp.array([2.0, 0.0, 1.0])))
    0.61990625
  """
  s, y, m = _lists(scores, labels, where)
  _checks.debug_values("labels", y, lambda: (y >= 0) | ~m, ">= 0")
  n = s.shape[-1]
  cut = n if k is None else min(_positive_int("k", k, "None or a positive int"), n)
  discount = np.where(np.arange(n) < cut, 1 / np.log2(np.arange(n) + 2), 0)
  cumulative = jnp.asarray(np.concatenate([[0], np.cumsum(discount)]), s.dtype)  # discount of positions < r
  valid, gain, above, tied = _descending(s, m, y)
  start, stop = above.astype(jnp.int32), (above + tied).astype(jnp.int32)
  shared = (cumulative[stop] - cumulative[start]) / jnp.maximum(tied, 1)
  dcg = jnp.sum(valid * gain * shared, axis=-1)
  ideal = jnp.sum(-jnp.sort(-y, axis=-1) * jnp.broadcast_to(jnp.asarray(discount, s.dtype), y.shape), axis=-1)
  return _list_mean(_reduce.safe_divide(dcg, ideal), s, m, weights)


@_metric
def mrr(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Mean reciprocal rank: one over the rank of the first relevant item, averaged over lists.

  .. math::
    \text{RR} = \frac{1}{\min\{r : y_{\pi(r)} > 0\}}

  with ``\pi`` the items by decreasing score, ranks from 1.

  Args:
    scores: floating ``[..., L]``: one score per list item, leading axes are lists.
    labels: relevance labels of the same shape; ``labels > 0`` is relevant.
    weights: optional per-list weights broadcastable to ``[...]``.
    where: optional boolean item mask broadcastable to ``[..., L]``: masked items leave the list.

  Returns:
    A scalar in ``[0, 1]``: the mean over the lists with at least one item left; a list without a relevant
    item scores 0 (torchmetrics' ``empty_target_action="neg"``).

  Ties: the expected reciprocal rank over uniformly random tie-breaking (a constant scorer is not rewarded,
  as "relevant first" would do; the tie-averaging of :func:`ndcg`). With ``a`` items above the best relevant
  score and ``g`` items tied with it, ``m`` of them relevant, the first relevant item sits at ``a + t`` with
  probability ``C(g - t, m - 1) / C(g, m)``.

  Matches: torchmetrics' ``RetrievalMRR`` on tie-free scores; with ties, the mean over all tie-breaking
  orders (tested exhaustively).

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxloss import metrics
    >>> print(metrics.mrr(jnp.array([[0.9, 0.5, 0.1], [0.2, 0.2, 0.3]]), jnp.array([[0, 1, 0], [1, 0, 0]])))
    0.45833334
  """
  s, y, m = _lists(scores, labels, where)
  relevant = (y > 0) & m
  best = jnp.max(jnp.where(relevant, s, -jnp.inf), axis=-1, keepdims=True)
  at_best = (s == best) & m
  above = jnp.sum((s > best) & m, axis=-1, keepdims=True).astype(s.dtype)
  tied = jnp.sum(at_best, axis=-1, keepdims=True).astype(s.dtype)
  hits = jnp.sum(at_best & relevant, axis=-1, keepdims=True).astype(s.dtype)
  # P(the first relevant of the tie group is after position t) = C(g - t, m) / C(g, m) = prod_{j<t} (g-m-j)/(g-j)
  j = jnp.broadcast_to(jnp.arange(s.shape[-1], dtype=s.dtype), s.shape)
  factor = jnp.where(j < tied - hits, (tied - hits - j) / jnp.maximum(tied - j, 1), 0)
  after = jnp.cumprod(factor, axis=-1)  # P(T > t) for t = 1..L
  before = jnp.concatenate([jnp.ones_like(after[..., :1]), after[..., :-1]], axis=-1)  # P(T > t - 1)
  reciprocal = jnp.sum((before - after) / (above + j + 1), axis=-1)
  return _list_mean(jnp.where(jnp.any(relevant, axis=-1), reciprocal, 0), s, m, weights)


@_metric
def precision_at_k(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  k: Static[int],
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Precision at ``k``: the fraction of the ``k`` highest-scoring items that are relevant.

  .. math::
    \text{P@}k = \frac{1}{k} \sum_{r < k} [y_{\pi(r)} > 0]

  with ``\pi`` the items by decreasing score.

  Args:
    scores: floating ``[..., L]``: one score per list item, leading axes are lists.
    labels: relevance labels of the same shape; ``labels > 0`` is relevant.
    k: the cut-off (a positive int). The denominator is ``k`` even when a list has fewer items (torchmetrics'
      ``adaptive_k=False``).
    weights: optional per-list weights broadcastable to ``[...]``.
    where: optional boolean item mask broadcastable to ``[..., L]``: masked items leave the list.

  Returns:
    A scalar in ``[0, 1]``: the mean over the lists with at least one item left.

  Ties: the expected value over uniformly random tie-breaking: a tie group straddling the cut-off contributes
  its fraction of relevant items per remaining slot.

  Matches: torchmetrics' ``RetrievalPrecision(top_k=k)`` on tie-free scores; with ties, the mean over all
  tie-breaking orders (tested exhaustively).

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxloss import metrics
    >>> print(metrics.precision_at_k(jnp.array([0.9, 0.5, 0.5, 0.1]), jnp.array([1, 0, 1, 1]), k=2))
    0.75
  """
  s, y, m = _lists(scores, labels, where)
  top = _positive_int("k", k)
  valid, relevant, above, tied = _descending(s, m, (y > 0).astype(s.dtype))
  in_top = jnp.clip(top - above, 0, tied) / jnp.maximum(tied, 1)  # P(the item is among the top k)
  return _list_mean(jnp.sum(valid * relevant * in_top, axis=-1) / top, s, m, weights)


# Calibration -------------------------------------------------------------------------------------


class ReliabilityCurve(NamedTuple):
  """Per-bin statistics of :func:`reliability_curve`, each ``[bins]`` (``edges``: ``[bins + 1]``).

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxloss import metrics
    >>> curve = metrics.reliability_curve(jnp.array([[0.75, 0.25]]), jnp.array([0]), bins=2)
    >>> print(curve._fields, curve.count)
    ('confidence', 'accuracy', 'count', 'edges') [0. 1.]
  """

  confidence: jax.Array  # mean confidence of the bin's examples (NaN for an empty bin)
  accuracy: jax.Array  # fraction of them predicted correctly (NaN for an empty bin)
  count: jax.Array  # type: ignore[assignment]  # summed weight (the number of examples without `weights`)
  edges: jax.Array  # the bin edges; bin b holds confidences in (edges[b], edges[b + 1]] (the first includes 0)


BINNINGS = ("equal_width", "equal_mass")


def _bins(probs, labels, bins, binning, weights, where):
  """``(count, confidence sum, correct sum, edges)`` per bin, from the top-label confidences."""
  p = _inputs.scores("probs", probs)
  bins = _positive_int("bins", bins)
  _checks.option("binning", binning, binning in BINNINGS, "one of " + ", ".join(map(repr, BINNINGS)))
  labels = _inputs.class_labels("probs", p, labels, where)
  dtype = _checks.compute_dtype(p)
  m, w = _counts(p.shape[:-1], dtype, labels.mask, weights, "`probs` without the class axis")
  _checks.debug_values("probs", p, lambda: ((p >= 0) & (p <= 1)) | ~m[..., None], "in [0, 1]")
  confidence = jnp.max(p, axis=-1).astype(dtype)
  correct = (jnp.argmax(p, axis=-1) == labels.index) & labels.in_range
  if binning == "equal_width":
    edges = jnp.linspace(0, 1, bins + 1, dtype=dtype)
  else:
    # numpy.percentile's default ("linear") quantiles of the unmasked confidences, computed as NumPy does so
    # that a confidence on an edge falls in the same bin
    values = jnp.sort(jnp.where(m, confidence, jnp.inf).ravel())
    n = jnp.sum(m, dtype=jnp.int32)
    position = jnp.asarray(np.linspace(0, 1, bins + 1) * 100 / 100, dtype) * (n - 1).astype(dtype)
    lower = jnp.clip(jnp.floor(position), 0, None)
    fraction = position - lower
    lower = lower.astype(jnp.int32)
    a, b = values[lower], values[jnp.minimum(lower + 1, jnp.maximum(n - 1, 0))]
    edges = jnp.where(fraction >= 0.5, b - (b - a) * (1 - fraction), a + (b - a) * fraction)
  inner = jnp.broadcast_to(edges[1:-1], (*confidence.shape, bins - 1))
  index = jnp.sum(confidence[..., None] > inner, axis=-1)  # numpy.searchsorted(edges[1:-1], confidence)
  member = index[..., None] == jnp.broadcast_to(jnp.arange(bins), (*index.shape, bins))
  axes = tuple(range(confidence.ndim))
  total = lambda x: jnp.sum(jnp.where(member, (w * x)[..., None], 0), axis=axes)
  return total(jnp.ones((), dtype)), total(confidence), total(correct.astype(dtype)), edges


@_metric
def reliability_curve(
  probs: ArrayLike,
  labels: ArrayLike,
  *,
  bins: Static[int] = 15,
  binning: Static[str] = "equal_width",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> ReliabilityCurve:
  r"""The reliability diagram: per confidence bin, the mean confidence, the accuracy and the count.

  .. math::
    \text{conf}_b = \frac{\sum_{n \in b} w_n \max_c p_{nc}}{\sum_{n \in b} w_n},\qquad
    \text{acc}_b = \frac{\sum_{n \in b} w_n [\arg\max_c p_{nc} = y_n]}{\sum_{n \in b} w_n}

  Args:
    probs: ``[..., C]`` class probabilities (e.g. ``jax.nn.softmax(logits)``); the confidence of an example
      is its largest probability, its prediction the argmax (the lower class on a tie).
    labels: integer class labels ``[...]``.
    bins: the number of bins (15 as Guo et al.).
    binning: ``"equal_width"`` (default: ``bins`` intervals of [0, 1], scikit-learn's ``strategy="uniform"``)
      or ``"equal_mass"`` (edges at the quantiles of the confidences, ``strategy="quantile"``).
    weights: optional per-example weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``: False leaves the example out.

  Returns:
    A :class:`ReliabilityCurve` of ``[bins]`` arrays ``confidence``, ``accuracy`` (NaN for empty bins, which
    a plot skips) and ``count``, and the ``[bins + 1]`` ``edges``. Bins are ``(edges[b], edges[b + 1]]``, the
    first including its lower edge: a confidence on an edge goes to the lower bin, as ``numpy.searchsorted``.

  Matches: ``sklearn.calibration.calibration_curve(argmax == labels, max_probs, n_bins=bins,
  strategy=...)`` on the non-empty bins (``prob_pred``, ``prob_true``). Equal-mass edges are the
  unweighted quantiles of the unmasked confidences (``numpy.percentile``).

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxloss import metrics
    >>> probs = jnp.array([[0.875, 0.125], [0.125, 0.875], [0.625, 0.375], [0.375, 0.625]])
    >>> curve = metrics.reliability_curve(probs, jnp.array([0, 1, 1, 1]), bins=4)
    >>> print(curve.confidence, curve.accuracy, curve.count)
    [  nan   nan 0.625 0.875] [nan nan 0.5 1. ] [0. 0. 2. 2.]
  """
  count, confidence, correct, edges = _bins(probs, labels, bins, binning, weights, where)
  occupied = count != 0
  mean = lambda x: jnp.where(occupied, x / jnp.where(occupied, count, 1), jnp.nan)
  return ReliabilityCurve(mean(confidence), mean(correct), count, edges)


@_metric
def expected_calibration_error(
  probs: ArrayLike,
  labels: ArrayLike,
  *,
  bins: Static[int] = 15,
  binning: Static[str] = "equal_width",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Expected calibration error: the count-weighted mean gap between accuracy and confidence over bins.

  .. math::
    \text{ECE} = \sum_b \frac{n_b}{N}\, \big|\text{acc}_b - \text{conf}_b\big|

  Args:
    probs: ``[..., C]`` class probabilities (e.g. ``jax.nn.softmax(logits)``); the confidence of an example
      is its largest probability, its prediction the argmax (the lower class on a tie).
    labels: integer class labels ``[...]``.
    bins: the number of bins (15 as Guo et al.).
    binning: ``"equal_width"`` (default: ``bins`` intervals of [0, 1], scikit-learn's ``strategy="uniform"``)
      or ``"equal_mass"`` (edges at the quantiles of the confidences, ``strategy="quantile"``).
    weights: optional per-example weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``: False leaves the example out.

  Returns:
    A scalar in ``[0, 1]``; 0 when no example is left.

  The bins and the tie rule are those of :func:`reliability_curve`. ``soft_binned_ece`` and ``mmce`` are its
  differentiable surrogates.

  Matches: ``sklearn.calibration.calibration_curve`` weighted by the bin counts (scikit-learn has no ECE);
  the top-label ECE of Guo et al., "On Calibration of Modern Neural Networks", ICML 2017.

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxloss import metrics
    >>> probs = jnp.array([[0.875, 0.125], [0.125, 0.875], [0.625, 0.375], [0.375, 0.625]])
    >>> print(metrics.expected_calibration_error(probs, jnp.array([0, 1, 1, 1]), bins=4))
    0.125
  """
  count, confidence, correct, _ = _bins(probs, labels, bins, binning, weights, where)
  return _reduce.safe_divide(jnp.sum(jnp.abs(correct - confidence)), jnp.sum(count))


@_metric
def max_calibration_error(
  probs: ArrayLike,
  labels: ArrayLike,
  *,
  bins: Static[int] = 15,
  binning: Static[str] = "equal_width",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Maximum calibration error: the largest gap between accuracy and confidence over the non-empty bins.

  .. math::
    \text{MCE} = \max_{b:\ n_b > 0} \big|\text{acc}_b - \text{conf}_b\big|

  Args:
    probs: ``[..., C]`` class probabilities (e.g. ``jax.nn.softmax(logits)``); the confidence of an example
      is its largest probability, its prediction the argmax (the lower class on a tie).
    labels: integer class labels ``[...]``.
    bins: the number of bins (15 as Guo et al.).
    binning: ``"equal_width"`` (default: ``bins`` intervals of [0, 1], scikit-learn's ``strategy="uniform"``)
      or ``"equal_mass"`` (edges at the quantiles of the confidences, ``strategy="quantile"``).
    weights: optional per-example weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``: False leaves the example out.

  Returns:
    A scalar in ``[0, 1]``; 0 when no example is left.

  The bins and the tie rule are those of :func:`reliability_curve`.

  Matches: the largest ``|prob_true - prob_pred|`` of ``sklearn.calibration.calibration_curve``; Naeini et
  al., "Obtaining Well Calibrated Probabilities Using Bayesian Binning", AAAI 2015.

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxloss import metrics
    >>> probs = jnp.array([[0.875, 0.125], [0.125, 0.875], [0.625, 0.375], [0.375, 0.625]])
    >>> print(metrics.max_calibration_error(probs, jnp.array([0, 1, 1, 1]), bins=4))
    0.125
  """
  count, confidence, correct, _ = _bins(probs, labels, bins, binning, weights, where)
  occupied = count != 0
  gap = jnp.abs(correct - confidence) / jnp.where(occupied, count, 1)
  return jnp.max(jnp.where(occupied, gap, 0))
