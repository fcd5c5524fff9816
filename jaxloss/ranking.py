"""Learning-to-rank losses over lists of scored items (rax-style).

``scores`` and ``labels`` are ``[..., L]``: the last axis is a list of ``L``
items, leading dimensions are batch. Labels are graded relevances (higher is
more relevant). The per-example loss is one value per list, of shape ``[...]``,
and ``weights`` broadcast to it. ``where`` is different: it masks *items*
(padding in lists of unequal length) and broadcasts to ``[..., L]``; a masked
item takes part in no pair and no softmax. Lists with nothing to rank (no valid
pair, or no relevant valid item for :func:`softmax_ranking`) have loss 0 and are
left out of the mean. Inputs are computed in float32 at least (float16 and
bfloat16 are promoted; float64 stays float64 when x64 is enabled).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _custom, _inputs, _reduce
from jaxloss._api import Numeric, Static, loss


def _lists(scores, labels, where) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Validated, promoted ``(scores, labels, valid)``; masked items are zeroed and ``valid`` is False there."""
  s, y, mask = _inputs.prepare(
    ("scores", scores, "floating"), ("labels", labels, "real"), where=where, of="`scores` (`where` masks list items)"
  )
  if s.ndim < 1:
    raise ValueError(f"{_checks.name()}: `scores` must have shape [..., L] (rank >= 1), got scores.shape={s.shape}.")
  return s, y, jnp.ones(s.shape, bool) if mask is None else mask


def _pairwise(lists, weights, reduction, pair_loss: Callable[[jax.Array], jax.Array]):
  """Sum of ``pair_loss(s_i - s_j)`` over the valid pairs with ``y_i > y_j``, per list of :func:`_lists`."""
  s, y, valid = lists
  ordered = (y[..., :, None] > y[..., None, :]) & valid[..., :, None] & valid[..., None, :]
  per_pair = jnp.where(ordered, pair_loss(s[..., :, None] - s[..., None, :]), 0)
  has_pair = jnp.any(ordered, axis=(-2, -1))
  return _reduce.reduce(jnp.sum(per_pair, axis=(-2, -1)), reduction=reduction, weights=weights, where=has_pair)


@loss
def pairwise_hinge(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  margin: Numeric = 1.0,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Pairwise hinge ranking loss: each more relevant item should outscore each less relevant one by ``margin``.

  .. math::
    \ell = \sum_{i, j:\ y_i > y_j} \max(0,\ \text{margin} - (s_i - s_j))

  Args:
    scores: floating ``[..., L]``, one score per list item.
    labels: relevance labels of the same shape (any real dtype).
    margin: the score gap beyond which a pair costs nothing (finite: an
      infinite one would make the loss constant, 0 or inf). May be traced (a
      0-d array or tracer); a traced non-finite margin gives a meaningless
      value (:func:`jaxloss.checked` reports it).
    reduction: ``"mean"`` (default, over lists with at least one pair),
      ``"sum"`` or ``"none"``.
    weights: optional per-list weights broadcastable to ``[...]``.
    where: optional boolean item mask broadcastable to ``[..., L]``.

  Returns:
    A scalar, or ``[...]`` (one value per list) for ``reduction="none"``.

  Subgradient: exactly 0 at the kink ``s_i - s_j = margin``. Per list, equal to
  ``rax.pairwise_hinge_loss`` (which sums over pairs); its mean is over lists,
  not pairs.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> print(jl.pairwise_hinge(jnp.array([2.0, 1.0, 3.0]), jnp.array([1.0, 0.0, 0.0])))
    2.0
  """
  lists = _lists(scores, labels, where)
  margin = _inputs.number("margin", margin, lists[0].dtype)
  return _pairwise(lists, weights, reduction, lambda gap: jax.nn.relu(margin - gap))


@loss
def pairwise_logistic(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Pairwise logistic (RankNet) loss: the log-odds that each more relevant item outscores each less relevant one.

  .. math::
    \ell = \sum_{i, j:\ y_i > y_j} \log\big(1 + e^{-(s_i - s_j)}\big)

  Args:
    scores: floating ``[..., L]``, one score per list item.
    labels: relevance labels of the same shape (any real dtype).
    reduction: ``"mean"`` (default, over lists with at least one pair),
      ``"sum"`` or ``"none"``.
    weights: optional per-list weights broadcastable to ``[...]``.
    where: optional boolean item mask broadcastable to ``[..., L]``.

  Returns:
    A scalar, or ``[...]`` (one value per list) for ``reduction="none"``.

  Smooth; stable for large score gaps (``softplus``). Per list, equal to
  ``rax.pairwise_logistic_loss``. Reference: Burges et al., "Learning to Rank
  using Gradient Descent", ICML 2005.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> print(jl.pairwise_logistic(jnp.array([0.0, 0.0]), jnp.array([1.0, 0.0])))
    0.6931472
  """
  return _pairwise(_lists(scores, labels, where), weights, reduction, lambda gap: jax.nn.softplus(-gap))


@loss
def softmax_ranking(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Softmax (ListNet top-one) ranking loss: cross-entropy from normalised labels to the softmax of the scores.

  .. math::
    \ell = -\sum_i \frac{y_i}{\sum_j y_j} \log \frac{e^{s_i}}{\sum_j e^{s_j}}

  Args:
    scores: floating ``[..., L]``, one score per list item.
    labels: non-negative relevance labels of the same shape (any real dtype).
    reduction: ``"mean"`` (default, over lists with a relevant item), ``"sum"``
      or ``"none"``.
    weights: optional per-list weights broadcastable to ``[...]``.
    where: optional boolean item mask broadcastable to ``[..., L]``; masked
      items leave the softmax too.

  Returns:
    A scalar, or ``[...]`` (one value per list) for ``reduction="none"``.

  Smooth. A list whose valid labels are all 0 has loss 0 and is left out of the
  mean (rax spreads it uniformly instead); negative labels are reported by
  :func:`jaxloss.checked`. An item scored -inf with label 0 drops out, as if
  masked by ``where`` (optax gives NaN); one with a positive label has its
  score read as ``finfo.min`` there, a loss of order ``3e38`` (float32) for
  the true infinity. Otherwise equal to ``rax.softmax_loss``. Reference:
  Cao et al., "Learning to Rank: From Pairwise Approach to Listwise Approach",
  ICML 2007.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> print(jl.softmax_ranking(jnp.array([0.0, 0.0, 0.0, 0.0]), jnp.array([1.0, 0.0, 0.0, 0.0])))
    1.3862944
  """
  s, y, valid = _lists(scores, labels, where)
  _checks.debug_values("labels", y, lambda: y >= 0, ">= 0")
  total = jnp.sum(y, axis=-1)
  normaliser = _custom.logsumexp(s, valid, axis=-1)
  normaliser = jnp.where(normaliser > -jnp.inf, normaliser, 0)  # no valid item: every term below is 0
  # sum_i y_i (normaliser - s_i), with the labels' total (already needed) in place of a sum over y against the
  # normaliser: its gradient then needs no reduction of its own (value_and_grad 0.65-0.85x the per-item form).
  # s floored at finfo.min (derivative 1): an item scored -inf with label 0 (a common way to drop it) adds
  # 0 * min = 0, not 0 * -inf = NaN; a select on y > 0 or jnp.maximum's derivative instead costs a pass in
  # value_and_grad (0.73x -> 1.06-1.14x jnp)
  floored = _custom.straight_through_floor(s, jnp.finfo(s.dtype).min)
  cross_entropy = total * normaliser - jnp.sum(jnp.where(valid, y * floored, 0), axis=-1)
  loss = _reduce.safe_divide(cross_entropy, total)
  return _reduce.reduce(loss, reduction=reduction, weights=weights, where=total > 0)


@loss
def approx_ndcg(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  temperature: Numeric = 1.0,
  k: Static[int | None] = None,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""ApproxNDCG: one minus NDCG with each item's rank replaced by a sum of sigmoids of score differences.

  .. math::
    \ell = 1 - \frac{1}{\mathrm{IDCG@k}} \sum_i \frac{(2^{y_i} - 1)\, c_i}{\log_2(1 + \hat r_i)}, \quad
    \hat r_i = 1 + \sum_{j \ne i} \sigma\Big(\frac{s_j - s_i}{T}\Big), \quad
    c_i = \sigma\Big(\frac{\bar r_k - \hat r_i}{T}\Big)

  over the valid items of a list, with ``T`` = ``temperature``; ``\bar r_k`` is
  the midpoint of the ``k``-th and ``(k+1)``-th smallest approximate ranks
  (no gradient), ``c_i = 1`` without ``k`` or when the list has at most ``k``
  valid items, and IDCG@k the exact DCG@k of the ideal order. As ``T -> 0``
  (without tied scores) the loss is one minus the exact NDCG@k.

  Args:
    scores: floating ``[..., L]``, one score per list item.
    labels: graded relevance labels (``>= 0``) of the same shape, any real dtype.
    temperature: ``T > 0`` and finite, the sigmoid's width in score units. May
      be traced (a 0-d array or tracer, differentiable); a traced non-positive
      or non-finite temperature gives a meaningless value
      (:func:`jaxloss.checked` reports it).
    k: the NDCG cutoff (an int >= 1), or None (default) for the whole list.
    reduction: ``"mean"`` (default, over lists with a relevant item), ``"sum"``
      or ``"none"``.
    weights: optional per-list weights broadcastable to ``[...]``.
    where: optional boolean item mask broadcastable to ``[..., L]``.

  Returns:
    A scalar, or ``[...]`` (one value per list) for ``reduction="none"``, in
    ``[0, 1]`` up to the relaxation.

  Edges: smooth; tied scores count half a rank each. With ``k`` the cut point
  ``\bar r_k`` is a constant for the gradient (``stop_gradient``, as rax), so
  the gradient is not the derivative of the value there. Metric: NDCG@k (gains
  ``2^y - 1``, discount ``1 / log2(1 + rank)``). Matches
  ``rax.approx_t12n(rax.ndcg_metric, temperature)(scores, labels, topn=k)``
  plus 1 (rax returns ``-NDCG``: the same gradient); lists without a relevant
  item have loss 0 and leave the mean (rax counts them as 0). Reference: Qin,
  Liu and Li, "A General Approximation Framework for Direct Optimization of
  Information Retrieval Measures", Information Retrieval 2010.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> print(jl.approx_ndcg(jnp.array([-1.0, 1.0, 0.0]), jnp.array([0.0, 0.0, 1.0])))
    0.36907023
  """
  if k is not None:
    _checks.option("k", k, _checks.is_int(k) and k >= 1, "None or an int >= 1")
  s, y, valid = _lists(scores, labels, where)
  temperature = _inputs.number("temperature", temperature, s.dtype, lambda t: t > 0, "a positive number")
  n = s.shape[-1]
  others = valid[..., None, :] & jnp.broadcast_to(~jnp.eye(n, dtype=bool), (*s.shape, n))
  rank = 1 + jnp.sum(jnp.where(others, jax.nn.sigmoid((s[..., None, :] - s[..., :, None]) / temperature), 0), -1)
  gain = jnp.where(valid, jnp.exp2(y) - 1, 0)
  count = jnp.sum(valid, axis=-1)
  weight = jnp.ones_like(s)
  if k is not None and k < n:
    # rax's approx_cutoff: the cut between the k-th and (k+1)-th approximate ranks, a constant for the gradient.
    ordered = jnp.sort(jnp.where(valid, jax.lax.stop_gradient(rank), jnp.inf), axis=-1)
    cut = (ordered[..., k - 1] + ordered[..., k]) / 2
    cut = jnp.where(count > k, cut, 0)
    weight = jnp.where((count > k)[..., None], jax.nn.sigmoid((cut[..., None] - rank) / temperature), 1)
  dcg = jnp.sum(jnp.where(valid, gain * weight / jnp.log2(1 + rank), 0), axis=-1)
  top = n if k is None else min(k, n)
  ideal_gain = -jnp.sort(-gain, axis=-1)[..., :top]
  discount = jnp.reshape(1 / jnp.log2(jnp.arange(2, top + 2, dtype=s.dtype)), (1,) * (s.ndim - 1) + (top,))
  ideal = jnp.sum(ideal_gain * discount, axis=-1)
  per_list = jnp.where(ideal > 0, 1 - _reduce.safe_divide(dcg, ideal), 0)
  return _reduce.reduce(per_list, reduction=reduction, weights=weights, where=ideal > 0)


@loss
def listmle(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""ListMLE: the negative log-likelihood of the label order under the Plackett-Luce model of the scores.

  .. math::
    \ell = \sum_{r=1}^{L} \Big(\log \sum_{q \ge r} e^{s_{\pi(q)}} - s_{\pi(r)}\Big)

  with ``\pi`` the valid items sorted by decreasing label (equal labels in
  list order).

  Args:
    scores: floating ``[..., L]``, one score per list item.
    labels: relevance labels of the same shape (any real dtype).
    reduction: ``"mean"`` (default, over lists with at least two valid
      items), ``"sum"`` or ``"none"``.
    weights: optional per-list weights broadcastable to ``[...]``.
    where: optional boolean item mask broadcastable to ``[..., L]``; masked
      items leave the permutation.

  Returns:
    A scalar, or ``[...]`` (one value per list) for ``reduction="none"``.

  Edges: smooth; ``O(L^2)`` memory per list (each item's suffix is a masked
  logsumexp). Equal labels are ordered by position, as a stable sort (rax
  sorts them likewise without a ``key``). Metric: stands in for the ranking
  metrics (NDCG, MAP) through the likelihood of the ideal permutation. Per
  list, equal to ``rax.listmle_loss``. Reference: Xia et al., "Listwise
  Approach to Learning to Rank: Theory and Algorithm", ICML 2008.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> print(jl.listmle(jnp.array([0.0, 0.0]), jnp.array([1.0, 0.0])))
    0.6931472
  """
  s, y, valid = _lists(scores, labels, where)
  n = s.shape[-1]
  position = jnp.arange(n)
  # j is at or after i in the label order: a lower label, or an equal one at or after i's position.
  later = (y[..., None, :] < y[..., :, None]) | (
    (y[..., None, :] == y[..., :, None]) & jnp.broadcast_to(position[None, :] >= position[:, None], (*s.shape, n))
  )
  later = later & valid[..., None, :] & valid[..., :, None]
  suffix = _custom.logsumexp(jnp.broadcast_to(s[..., None, :], (*s.shape, n)), later, axis=-1)
  per_list = jnp.sum(jnp.where(valid, jnp.where(valid, suffix, 0) - s, 0), axis=-1)
  return _reduce.reduce(per_list, reduction=reduction, weights=weights, where=jnp.sum(valid, axis=-1) >= 2)
