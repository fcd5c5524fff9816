"""The one place where ``reduction``, ``weights`` and ``where`` are applied.

Every public loss computes its per-example loss ``l`` and ends in :func:`reduce`:

* ``weights`` and ``where`` broadcast to ``l.shape`` (numpy rules, ``l``'s shape
  never changes);
* ``"none"`` returns ``w * m * l`` with masked entries exactly 0, so
  ``loss(..., reduction="none").sum() == loss(..., reduction="sum")``;
* ``"sum"`` is ``sum(w * m * l)``, ``"mean"`` is ``sum(w * m * l) / sum(w * m)``
  (PyTorch's weighted mean), and 0 with a zero gradient when nothing is left;
* masked entries never leak NaN: losses pass their inputs through
  :func:`zero_masked` before computing, so an inf/NaN input under a False
  ``where`` gets an exactly zero value and gradient.

The invariants follow rax's ``safe_reduce``; NaN in unmasked inputs still
propagates.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxloss import _checks

REDUCTIONS = ("mean", "sum", "none")


_CHECKS_ARG = "_jaxloss_checks"


def jit(*static: str):
  """``jax.jit`` for a public loss: ``reduction`` and the named (scalar) options are static.

  The runtime checks are part of the compiled function only when it is traced
  under :func:`jaxloss.checked` (a hidden static argument keeps the two
  versions apart in the jit cache), so ordinary calls stay on JAX's fast
  dispatch path.
  """

  def decorate(fn):
    def traced(*args, **kwargs):  # options arrive by keyword (they are keyword-only)
      token = _checks.CHECKING.set(kwargs.pop(_CHECKS_ARG, False))
      try:
        return fn(*args, **kwargs)
      finally:
        _checks.CHECKING.reset(token)

    traced.__name__ = traced.__qualname__ = fn.__name__  # the name XLA and profilers show

    jitted = jax.jit(traced, static_argnames=("reduction", *static, _CHECKS_ARG))

    @functools.wraps(fn)
    def call(*args, **kwargs):
      if _checks.CHECKING.get():
        kwargs[_CHECKS_ARG] = True
      return jitted(*args, **kwargs)

    # No `lower`/`trace`/`clear_cache` attributes: functools.wraps (in jax.grad, jax.jit, ...)
    # copies them onto every wrapper, where they shadow the wrapper's own methods, and
    # jax.jit(jax.value_and_grad(loss)).lower(...) then compiles the bare loss. The cache
    # size (for the no-retrace tests) goes under a name no JAX wrapper has.
    call._jaxloss_cache_size = jitted._cache_size
    return call

  return decorate


def check_reduction(fn: str, reduction: str) -> None:
  if not isinstance(reduction, str) or reduction not in REDUCTIONS:
    valid = ", ".join(repr(r) for r in REDUCTIONS)
    raise ValueError(f"{fn}: `reduction` must be one of {valid}, got {reduction!r}.")


def where_mask(fn: str, where, shape, of: str = "the per-example loss") -> jax.Array | None:
  """``where`` as a boolean array of ``shape`` (None stays None)."""
  if where is None:
    return None
  where = jnp.asarray(where)
  _checks.broadcastable(fn, "where", where, shape, of)
  return jnp.broadcast_to(where.astype(bool), shape)


def weight_array(fn: str, weights, shape, dtype, of: str = "the per-example loss"):
  """``weights`` as a real array of ``shape`` and ``dtype`` (None stays None)."""
  if weights is None:
    return None
  weights = _checks.real(fn, "weights", weights)
  _checks.broadcastable(fn, "weights", weights, shape, of)
  return jnp.broadcast_to(weights.astype(dtype), shape)


def zero_masked(mask: jax.Array | None, *arrays: jax.Array, axis: int | None = None, fill=0):
  """Replace masked entries of each array by ``fill`` before the loss is computed.

  This is the "double where": without it, a NaN or inf input under a False mask
  would still produce a NaN gradient (0 * inf). ``axis`` is the extra axis the
  arrays have over the mask (a class or feature axis), or None if they match.
  """
  if mask is None:
    return arrays if len(arrays) != 1 else arrays[0]
  m = mask if axis is None else jnp.expand_dims(mask, axis)
  out = tuple(None if a is None else jnp.where(m, a, jnp.asarray(fill, a.dtype)) for a in arrays)
  return out if len(out) != 1 else out[0]


def safe_divide(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
  """``numerator / denominator``, and 0 (with a zero gradient) where the denominator is 0."""
  nonzero = denominator != 0
  return jnp.where(nonzero, numerator / jnp.where(nonzero, denominator, 1), 0)


def reduce(
  fn: str,
  loss: jax.Array,
  *,
  reduction: str,
  weights=None,
  where=None,
  count_weights=None,
) -> jax.Array:
  """Apply ``where``, ``weights`` and ``reduction`` to the per-example ``loss``.

  ``count_weights`` (optional, the shape of ``loss``) are factors each example
  already carries inside ``loss`` and also counts for in the mean's denominator:
  ``"mean"`` is then ``sum(w * m * l) / sum(w * m * count_weights)``. They are
  torch's class weights of the targets (``nll_loss``, ``cross_entropy``), whose
  mean divides by the summed weights even where label smoothing puts loss on
  examples whose class weight is 0.
  """
  check_reduction(fn, reduction)
  mask = where_mask(fn, where, loss.shape)
  w = weight_array(fn, weights, loss.shape, loss.dtype)
  if mask is not None:
    loss = jnp.where(mask, loss, jnp.zeros((), loss.dtype))
  if w is not None:
    loss = loss * w
  if reduction == "none":
    return loss
  total = jnp.sum(loss)
  if reduction == "sum":
    return total
  if count_weights is not None:
    count_weights = jnp.broadcast_to(count_weights.astype(loss.dtype), loss.shape)
    w = count_weights if w is None else w * count_weights
  if w is None and mask is None:
    # An empty batch has mean 0, as an all-masked one does (torch gives NaN).
    return total / loss.size if loss.size else jnp.zeros((), loss.dtype)
  if w is None:
    count = jnp.sum(mask, dtype=loss.dtype)
  elif mask is None:
    count = jnp.sum(w)
  else:
    count = jnp.sum(jnp.where(mask, w, jnp.zeros((), w.dtype)))
  return safe_divide(total, count)
