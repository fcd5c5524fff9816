"""Overlap losses for segmentation: soft Dice and Tversky, differentiable surrogates for F1.

``probs`` and ``targets`` have the same shape. Each example's overlap is
computed over ``axis``: by default every axis except the first, so
``[N, H, W]`` (or ``[N, C, H, W]``, all classes pooled) gives one loss per
example; ``axis=(-2, -1)`` on ``[N, C, H, W]`` gives one per example and class.
``reduction="none"`` returns the shape of the inputs without ``axis``, and
``weights`` / ``where`` broadcast to it. Under ``jax.vmap`` the mapped axis is
invisible, so pass ``axis`` with negative indices there. Inputs are computed in
float32 at least (float16 and bfloat16 are promoted, the result is float32).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _custom, _inputs, _reduce
from jaxloss._api import Numeric, Static, loss


def _overlap_inputs(probs, targets, axis, where):
  """Validated, promoted, masked ``(probs, targets)``, the axes to sum over, and the mask."""
  p = _checks.floating("probs", probs)
  if axis is None:
    if p.ndim < 2:
      raise ValueError(
        f"{_checks.name()}: with `axis=None` (every axis but the first) `probs` needs rank >= 2, got shape {p.shape};"
        " pass `axis` to choose the axes each example's overlap is taken over."
      )
    axes = tuple(range(1, p.ndim))
  else:
    axes = _checks.axis_tuple(axis, p.ndim)
  p, t, mask = _inputs.prepare(("probs", p, "floating"), ("targets", targets, "real"), where=where, axes=axes)
  _checks.debug_probabilities(probs=p, targets=t)
  return p, t, axes, mask


def _one_minus_ratio(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
  """``1 - numerator / denominator``, and 0 (a perfect score, zero gradient) where both are 0."""
  positive = denominator > 0
  return jnp.where(positive, 1 - _custom.divide(numerator, jnp.where(positive, denominator, 1)), 0)


def _non_negative(arg: str, value, dtype):
  """``smooth``, ``alpha`` or ``beta``: a finite number >= 0, constant or traced."""
  return _inputs.number(arg, value, dtype, lambda v: v >= 0, "a non-negative number")


@loss
def dice(
  probs: ArrayLike,
  targets: ArrayLike,
  *,
  smooth: Numeric = 1.0,
  axis: Static[int | tuple[int, ...] | None] = None,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Soft Dice loss, one minus a smoothed, differentiable Dice coefficient (F1 score).

  .. math::
    \ell_i = 1 - \frac{2 \sum_k p_{ik} t_{ik} + s}{\sum_k p_{ik} + \sum_k t_{ik} + s}

  with the sums over ``axis`` and ``s`` = ``smooth``.

  Args:
    probs: floating ``[N, ...]``, predicted probabilities in ``[0, 1]``.
    targets: same shape, in ``[0, 1]`` (usually a 0/1 mask).
    smooth: ``s >= 0``, added to numerator and denominator: an empty prediction
      of an empty target scores 0 loss, and the gradient stays bounded when
      both are small. 0 gives the exact soft Dice; it must be finite (the
      limit ``s -> inf`` is the constant 0). May be traced (a 0-d array or
      tracer, differentiable); a traced negative or non-finite smooth gives a
      meaningless value (:func:`jaxloss.checked` reports it).
    axis: the axes each example's overlap is taken over: ``None`` (default) for
      every axis but the first, or an int / tuple of ints.
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` over examples.
    weights: optional per-example weights broadcastable to the shape without
      ``axis``.
    where: optional per-example boolean mask, broadcastable likewise.

  Returns:
    A scalar, or the shape of ``probs`` without ``axis`` for
    ``reduction="none"``, in ``[0, 1]``; float32 for half inputs.

  Smooth in ``probs`` wherever the denominator is positive. With
  ``smooth = 0`` an example whose prediction and target are both all zeros has
  loss 0 with a zero gradient (the ratio is 0/0 there). Values outside
  ``[0, 1]`` are reported by :func:`jaxloss.checked`. Reference: Milletari et
  al., "V-Net", 3DV 2016 (with the linear denominator of Sudre et al. 2017).

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> p = jnp.array([[1.0, 1.0, 0.0, 0.0]])
    >>> print(jl.dice(p, jnp.array([[1.0, 0.0, 0.0, 0.0]]), smooth=0.0))
    0.3333333
  """
  p, t, axes, mask = _overlap_inputs(probs, targets, axis, where)
  smooth = _non_negative("smooth", smooth, p.dtype)
  overlap = jnp.sum(p * t, axis=axes)
  # one sum of p + t: XLA:CPU reads p and t in the overlap's pass, where sum(p) + sum(t) took a third pass over t
  loss = _one_minus_ratio(2 * overlap + smooth, jnp.sum(p + t, axis=axes) + smooth)
  return _reduce.reduce(loss, reduction=reduction, weights=weights, where=mask)


@loss
def tversky(
  probs: ArrayLike,
  targets: ArrayLike,
  *,
  alpha: Numeric = 0.5,
  beta: Numeric = 0.5,
  smooth: Numeric = 1.0,
  axis: Static[int | tuple[int, ...] | None] = None,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Tversky loss: a Dice loss that weighs false positives and false negatives separately.

  .. math::
    \ell_i = 1 - \frac{\mathrm{TP}_i + s}{\mathrm{TP}_i + \alpha\,\mathrm{FP}_i + \beta\,\mathrm{FN}_i + s},
    \quad \mathrm{TP} = \sum p t,\ \mathrm{FP} = \sum p (1 - t),\ \mathrm{FN} = \sum (1 - p) t

  with the sums over ``axis`` and ``s`` = ``smooth``. ``alpha = beta = 0.5`` is
  :func:`dice` with ``smooth`` doubled; ``alpha = beta = 1`` is the soft
  Jaccard (IoU) loss.

  Args:
    probs: floating ``[N, ...]``, predicted probabilities in ``[0, 1]``.
    targets: same shape, in ``[0, 1]``.
    alpha: weight of false positives, ``>= 0`` and finite. May be traced (a
      0-d array or tracer); a traced negative or non-finite alpha gives a
      meaningless value (:func:`jaxloss.checked` reports it).
    beta: weight of false negatives, ``>= 0`` and finite (raise it to favour
      recall). May be traced, as ``alpha``.
    smooth: ``s >= 0`` and finite, added to numerator and denominator. May be
      traced, as ``alpha``.
    axis: the axes each example's overlap is taken over: ``None`` (default) for
      every axis but the first, or an int / tuple of ints.
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` over examples.
    weights: optional per-example weights broadcastable to the shape without
      ``axis``.
    where: optional per-example boolean mask, broadcastable likewise.

  Returns:
    A scalar, or the shape of ``probs`` without ``axis`` for
    ``reduction="none"``; float32 for half inputs.

  As :func:`dice`: smooth where the denominator is positive; a 0/0 ratio
  (``smooth = 0``, nothing predicted or present) is a perfect score with a zero
  gradient. Reference: Salehi et al., "Tversky loss function for image
  segmentation using 3D fully convolutional deep networks", MLMI 2017.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> p, t = jnp.array([[1.0, 1.0, 0.0, 0.0]]), jnp.array([[1.0, 0.0, 0.0, 0.0]])
    >>> print(jl.tversky(p, t, alpha=0.2, beta=0.8, smooth=0.0))
    0.16666669
  """
  p, t, axes, mask = _overlap_inputs(probs, targets, axis, where)
  alpha, beta, smooth = (
    _non_negative(arg, v, p.dtype) for arg, v in (("alpha", alpha), ("beta", beta), ("smooth", smooth))
  )
  loss = _tversky(p, t, axes, alpha, beta, smooth)
  return _reduce.reduce(loss, reduction=reduction, weights=weights, where=mask)


def _tversky(p: jax.Array, t: jax.Array, axes, alpha, beta, smooth) -> jax.Array:
  """The Tversky loss over ``axes``; ``alpha``, ``beta`` and ``smooth`` may be traced."""
  # FP = sum(p) - TP and FN = sum(t) - TP, so TP + alpha FP + beta FN is written with the three sums XLA
  # computes in one pass (as optax does); alpha = beta = 1/2 is then exactly Dice's (sum(p) + sum(t)) / 2.
  overlap = jnp.sum(p * t, axis=axes)
  sum_p, sum_t = jnp.sum(p, axis=axes), jnp.sum(t, axis=axes)
  denominator = (1 - alpha - beta) * overlap + alpha * sum_p + beta * sum_t + smooth
  return _one_minus_ratio(overlap + smooth, denominator)
