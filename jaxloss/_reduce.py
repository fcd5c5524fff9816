"""The one place where ``reduction``, ``weights`` and ``where`` are applied.

Every public loss computes its per-example loss ``l`` and ends in :func:`reduce`:

* ``weights`` and ``where`` broadcast to ``l.shape`` (numpy rules, ``l``'s shape
  never changes); ``where`` must be boolean;
* ``"none"`` returns ``w * m * l`` with masked entries exactly 0 (even where a
  weight is NaN or inf), so ``loss(..., reduction="none").sum() ==
  loss(..., reduction="sum")``;
* ``"sum"`` is ``sum(w * m * l)``, ``"mean"`` is ``sum(w * m * l) / sum(w * m)``
  (PyTorch's weighted mean), and 0 with a zero gradient when nothing is left
  (an empty batch included);
* masked entries never leak NaN: losses pass their inputs through
  :func:`jaxloss._inputs.zero_masked` before computing, so an inf/NaN input
  under a False ``where`` gets an exactly zero value and gradient.

The invariants follow rax's ``safe_reduce``; NaN in unmasked inputs still
propagates. ``axis`` reduces only some axes (the per-example RMSE of
:func:`jaxloss.rmse`, the one loss that reduces inside its formula).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxloss import _inputs
from jaxloss._api import name

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: str) -> None:
  if not isinstance(reduction, str) or reduction not in REDUCTIONS:
    valid = ", ".join(repr(r) for r in REDUCTIONS)
    raise ValueError(f"{name()}: `reduction` must be one of {valid}, got {reduction!r}.")


def safe_divide(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
  """``numerator / denominator``, and 0 (with a zero gradient) where the denominator is 0."""
  nonzero = denominator != 0
  return jnp.where(nonzero, numerator / jnp.where(nonzero, denominator, 1), 0)


def reduce(
  loss: jax.Array,
  *,
  reduction: str,
  weights=None,
  where=None,
  count_weights=None,
  axis: tuple[int, ...] | None = None,
  of: str = "the per-example loss",
) -> jax.Array:
  """Apply ``where``, ``weights`` and ``reduction`` to the per-example ``loss``.

  ``count_weights`` (optional, the shape of ``loss``) are factors each example
  already carries inside ``loss`` and also counts for in the mean's denominator:
  ``"mean"`` is then ``sum(w * m * l) / sum(w * m * count_weights)``. They are
  torch's class weights of the targets (``nll_loss``, ``cross_entropy``), whose
  mean divides by the summed weights even where label smoothing puts loss on
  examples whose class weight is 0. ``axis`` (default: all) are the axes
  ``"mean"`` and ``"sum"`` reduce.
  """
  check_reduction(reduction)
  mask = _inputs.mask(where, loss.shape, of)
  w = _inputs.weights(weights, loss.shape, loss.dtype, of)
  if mask is not None:
    zero = jnp.zeros((), loss.dtype)
    loss = jnp.where(mask, loss, zero)
    if w is not None:
      w = jnp.where(mask, w, zero)  # masked means masked: a NaN weight under a False `where` stays out
  if w is not None:
    loss = loss * w
  if reduction == "none":
    return loss
  total = jnp.sum(loss, axis=axis)
  if reduction == "sum":
    return total
  if count_weights is not None:
    count_weights = jnp.broadcast_to(count_weights.astype(loss.dtype), loss.shape)
    w = count_weights if w is None else w * count_weights
  if w is None and mask is None:
    size = loss.size if axis is None else math.prod(loss.shape[a] for a in axis)
    # An empty batch has mean 0, as an all-masked one does (torch gives NaN).
    return total / size if size else jnp.zeros(total.shape, loss.dtype)
  if w is None:
    assert mask is not None  # both None returned above
    count = jnp.sum(mask, axis=axis, dtype=loss.dtype)
  elif mask is None:
    count = jnp.sum(w, axis=axis)
  else:
    count = jnp.sum(jnp.where(mask, w, jnp.zeros((), w.dtype)), axis=axis)
  return safe_divide(total, count)
