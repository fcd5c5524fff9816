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
  :func:`jaxloss.checked`. Otherwise equal to ``rax.softmax_loss``. Reference:
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
  cross_entropy = jnp.sum(jnp.where(valid, y * (normaliser[..., None] - s), 0), axis=-1)
  loss = _reduce.safe_divide(cross_entropy, total)
  return _reduce.reduce(loss, reduction=reduction, weights=weights, where=total > 0)
