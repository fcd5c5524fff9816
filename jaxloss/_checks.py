"""Validation shared by every loss: trace-time checks and the runtime checks behind ``jl.checked``.

Every trace-time check runs while JAX traces a loss, so bad input fails before
anything is compiled, with a message that names the loss (read from
:func:`jaxloss._api.name`), the argument, what was expected and what arrived.
Runtime (value-dependent) checks go through :func:`debug_check`, staged only
while the loss is traced under :func:`jaxloss.checked`.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

from jaxloss._api import CHECKING, name


def _array(arg: str, x) -> jax.Array:
  if x is None:
    raise TypeError(f"{name()}: `{arg}` is required, got None.")
  try:
    return jnp.asarray(x)
  except (TypeError, ValueError) as error:
    raise TypeError(f"{name()}: `{arg}` must be an array, got {type(x).__name__} ({error}).") from None


def floating(arg: str, x) -> jax.Array:
  """``x`` as an array; it must have a floating dtype (it is differentiated)."""
  x = _array(arg, x)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise TypeError(
      f"{name()}: `{arg}` must be a floating-point array, got dtype {x.dtype}. Cast it, e.g. `x.astype(jnp.float32)`."
    )
  return x


def real(arg: str, x) -> jax.Array:
  """``x`` as an array of a real numeric dtype (bool, integer or floating)."""
  x = _array(arg, x)
  if jnp.issubdtype(x.dtype, jnp.complexfloating) or not (jnp.issubdtype(x.dtype, jnp.number) or x.dtype == jnp.bool_):
    raise TypeError(f"{name()}: `{arg}` must be a real-valued array, got dtype {x.dtype}.")
  return x


def integer(arg: str, x) -> jax.Array:
  """``x`` as an array of an integer dtype (class indices, lengths)."""
  x = _array(arg, x)
  if not jnp.issubdtype(x.dtype, jnp.integer):
    raise TypeError(f"{name()}: `{arg}` must be an integer array, got dtype {x.dtype}.")
  return x


def boolean(arg: str, x) -> jax.Array:
  """``x`` as a boolean array (a mask): a float or integer mask is an error, never a silent cast."""
  x = _array(arg, x)
  if x.dtype != jnp.bool_:
    raise TypeError(
      f"{name()}: `{arg}` must be a boolean mask, got dtype {x.dtype}. Compare it first, e.g. `{arg}=mask > 0`."
    )
  return x


def compute_dtype(*arrays) -> np.dtype:
  """The dtype losses compute in: float32, or float64 if a floating input is float64.

  Half-precision inputs (float16, bfloat16) are promoted to float32, so every
  loss accumulates in float32 and returns float32 for them. Chosen explicitly
  (not by ``jnp.promote_types``) so it holds under strict dtype promotion.
  """
  wide = any(a is not None and a.dtype == np.float64 for a in arrays)
  return np.dtype(np.float64 if wide else np.float32)


def same_shape(*named: tuple[str, jax.Array]) -> None:
  """All arrays have exactly the same shape (no silent broadcasting between them)."""
  (first_name, first), *rest = named
  for arg, x in rest:
    if x.shape != first.shape:
      raise ValueError(
        f"{name()}: `{first_name}` and `{arg}` must have the same shape, got"
        f" {first_name}.shape={first.shape} and {arg}.shape={x.shape}."
      )


def broadcastable(arg: str, x: jax.Array, shape: Sequence[int], of: str) -> None:
  """``x`` broadcasts to ``shape`` (numpy rules) without changing ``shape``."""
  shape = tuple(shape)
  try:
    ok = np.broadcast_shapes(x.shape, shape) == shape
  except ValueError:
    ok = False
  if not ok:
    raise ValueError(f"{name()}: `{arg}` must broadcast to the shape of {of} {shape}, got {arg}.shape={x.shape}.")


def option(arg: str, value, ok: bool, expected: str) -> None:
  """A static option holds a valid value, else a ValueError naming it."""
  if not ok:
    raise ValueError(f"{name()}: `{arg}` must be {expected}, got {value!r}.")


def is_int(value) -> bool:
  """A Python or NumPy integer that is not a bool."""
  return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def axis_index(axis, ndim: int, arg: str = "axis") -> int:
  """A valid axis of an array of rank ``ndim``, normalised to be non-negative."""
  if not is_int(axis):
    raise TypeError(f"{name()}: `{arg}` must be an int, got {axis!r}.")
  if not -ndim <= axis < ndim:
    raise ValueError(f"{name()}: `{arg}`={axis} is out of range for an array of rank {ndim}.")
  return int(axis) % ndim


def axis_tuple(axis, ndim: int, arg: str = "axis") -> tuple[int, ...]:
  """``None`` (all axes), an int or a tuple of ints, normalised and deduplicated."""
  if axis is None:
    return tuple(range(ndim))
  if is_int(axis):
    items = (axis,)
  elif isinstance(axis, (tuple, list)):
    items = tuple(axis)
  else:
    raise TypeError(f"{name()}: `{arg}` must be None, an int or a tuple of ints, got {axis!r}.")
  out = tuple(sorted({axis_index(a, ndim, arg) for a in items}))
  if len(out) != len(items):
    raise ValueError(f"{name()}: `{arg}`={axis!r} repeats an axis.")
  return out


# Runtime checks ----------------------------------------------------------------------------------


def debug_check(pred, message: str, *fmt_args) -> None:
  """A runtime check, staged only while :func:`jaxloss.checked` traces the loss.

  ``pred`` and ``fmt_args`` may be zero-argument callables: they are then
  evaluated only when the check is staged (a reduction such as ``jnp.min`` of
  an empty array must not run in ordinary calls).
  """
  if CHECKING.get():
    evaluate = lambda v: v() if callable(v) else v
    checkify.debug_check(evaluate(pred), message, *(evaluate(a) for a in fmt_args))


def _first_failing(values: jax.Array, ok: jax.Array) -> jax.Array:
  """The first entry of ``values`` where ``ok`` is False (the first entry if none).

  Selected by a reduction, not by indexing: a dynamic index into a batch-sharded
  array fails under explicit sharding.
  """
  values, ok = jnp.ravel(values), jnp.ravel(jnp.broadcast_to(ok, values.shape))
  first = jnp.argmin(ok)
  return jnp.sum(jnp.where(jnp.arange(values.size) == first, values, jnp.zeros((), values.dtype)))


def debug_all(ok, message: str, values: jax.Array) -> None:
  """Runtime check that ``ok`` holds everywhere; the message's ``{}`` shows the first of ``values`` where it fails.

  ``ok`` may be a callable of nothing (evaluated only when checks are staged).
  An empty array satisfies every check.
  """
  if CHECKING.get() and values.size:
    ok = ok() if callable(ok) else ok
    checkify.debug_check(jnp.all(ok), message, _first_failing(values, ok))


def debug_values(arg: str, x: jax.Array, ok, expected: str) -> None:
  """Runtime check that every entry of ``x`` is ``ok``; the message shows the first one that is not."""
  debug_all(ok, f"{name()}: `{arg}` must be {expected}, found {{}}.", x)


def debug_no_nan(**arrays: jax.Array) -> None:
  """Runtime check that no (unmasked) input contains NaN."""
  for arg, x in arrays.items():
    if x is not None and jnp.issubdtype(x.dtype, jnp.inexact):
      debug_check(lambda x=x: ~jnp.any(jnp.isnan(x)), f"{name()}: `{arg}` contains NaN.")


def debug_probabilities(**arrays: jax.Array) -> None:
  """Runtime check that each (unmasked) array holds probabilities, in [0, 1]."""
  for arg, x in arrays.items():
    debug_values(arg, x, lambda x=x: (x >= 0) & (x <= 1), "in [0, 1]")
