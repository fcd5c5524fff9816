"""The input layer: every loss prepares its arrays and options here.

One helper per kind of input, each raising a message that names the loss, the
argument, what was expected and what arrived:

* :func:`prepare`: the arrays of a loss (floating or real, one shape, promoted
  to the compute dtype), ``where`` as a boolean mask, and masked entries
  replaced before the loss sees them (the "double where": an inf or NaN under
  a False ``where`` then gets an exactly zero value and gradient), with the
  ``jl.checked`` NaN checks;
* :func:`mask`, :func:`weights`, :func:`zero_masked`: the pieces of it, for
  losses whose inputs do not share one shape;
* :func:`scores`, :func:`class_labels`, :func:`class_weights`: class scores with
  the class axis last, integer labels (with ``ignore_index``), per-class weights;
* :func:`signs`: labels in {-1, +1};
* :func:`number`: a numeric option, constant or traced (see :mod:`jaxloss._api`),
  and :func:`label_smoothing`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _checks
from jaxloss._api import is_array, name

_KINDS = {"floating": _checks.floating, "real": _checks.real}


# Masks and weights -------------------------------------------------------------------------------


def mask(where, shape: Sequence[int], of: str = "the per-example loss") -> jax.Array | None:
  """``where`` as a boolean array of ``shape`` (None stays None)."""
  if where is None:
    return None
  where = _checks.boolean("where", where)
  _checks.broadcastable("where", where, shape, of)
  return jnp.broadcast_to(where, tuple(shape))


def weights(w, shape: Sequence[int], dtype, of: str = "the per-example loss") -> jax.Array | None:
  """``weights`` as a real array of ``shape`` and ``dtype`` (None stays None)."""
  if w is None:
    return None
  w = _checks.real("weights", w)
  _checks.broadcastable("weights", w, shape, of)
  return jnp.broadcast_to(w.astype(dtype), tuple(shape))


def zero_masked(m: jax.Array | None, *arrays: jax.Array | None, axis=None, fill=0):
  """Replace masked entries of each array by ``fill`` before the loss is computed (the double where).

  Without it, a NaN or inf input under a False mask would still produce a NaN
  gradient (``0 * inf``). ``axis`` is the extra axis (or axes) the arrays have
  over the mask (a class or feature axis), or None if they match.
  """
  if m is None:
    return arrays if len(arrays) != 1 else arrays[0]
  m = m if axis is None else jnp.expand_dims(m, axis)
  out = tuple(None if a is None else jnp.where(m, a, jnp.asarray(fill, a.dtype)) for a in arrays)
  return out if len(out) != 1 else out[0]


# Arrays ------------------------------------------------------------------------------------------


def prepare(
  *named: tuple[str, Any, str],
  where=None,
  axes: int | Sequence[int] = (),
  of: str | None = None,
  dtype_from: Sequence[jax.Array | None] = (),
):
  """The arrays of a loss, validated, promoted and masked; and the mask.

  Args:
    *named: ``(argument, value, kind)`` with ``kind`` ``"floating"`` (it is
      differentiated) or ``"real"`` (any real dtype); all must have the shape
      of the first.
    where: the loss's ``where``.
    axes: axes of that shape the per-example loss reduces (a class, feature or
      distribution axis); ``where`` broadcasts to the shape without them.
    of: what ``where`` broadcasts to, for the message (default: the first
      argument, or the per-example loss when ``axes`` are given).
    dtype_from: further floating arrays that take part in the compute dtype.

  Returns:
    ``(*arrays, mask)``: each array in the compute dtype (float32, or float64
    if a floating input is float64), masked entries 0; ``mask`` is None when
    ``where`` is.
  """
  arrays = [(arg, _KINDS[kind](arg, value)) for arg, value, kind in named]
  _checks.same_shape(*arrays)
  first_name, first = arrays[0]
  axes = (axes,) if isinstance(axes, int) else tuple(axes)
  axes = tuple(sorted(a % first.ndim for a in axes)) if first.ndim else ()
  shape = tuple(n for i, n in enumerate(first.shape) if i not in axes)
  if of is None:
    of = f"`{first_name}`" if not axes else "the per-example loss"
  dtype = _checks.compute_dtype(*(x for _, x in arrays), *dtype_from)
  m = mask(where, shape, of)
  out = zero_masked(m, *(x.astype(dtype) for _, x in arrays), axis=axes or None)
  out = out if isinstance(out, tuple) else (out,)
  _checks.debug_no_nan(**{arg: x for (arg, _), x in zip(arrays, out, strict=True)})
  return (*out, m)


def arrival_dtype(promoted: jax.Array, *inputs):
  """The dtype the loss's raw ``inputs`` arrived in, if narrower than the compute dtype of ``promoted``; else None.

  ``inputs`` are the loss's arguments before :func:`prepare`, ``promoted``
  one array it prepared from them. Every input must have
  arrived in one and the same half dtype (a Python list or a mixed set gives
  None): then each prepared array holds values exact in it (masked entries
  are 0), and a kernel may hand XLA the caller's buffers in that dtype (a
  ``lax.cond`` operand, a max) instead of the promoted float32 copies, which
  XLA:CPU materialises where several fusions read them.
  """
  dtypes = {jnp.dtype(getattr(x, "dtype", promoted.dtype)) for x in inputs}
  dtype = dtypes.pop() if len(dtypes) == 1 else promoted.dtype
  # Only a narrower float: a float64 NumPy input under disabled x64 arrives wider than its float32 promotion.
  narrower = jnp.issubdtype(dtype, jnp.floating) and jnp.finfo(dtype).bits < jnp.finfo(promoted.dtype).bits
  return dtype if narrower else None


def per_example(arg: str, x, shape: Sequence[int], dtype, m: jax.Array | None, *, fill=0, of: str = "") -> jax.Array:
  """A real array with exactly the per-example ``shape`` (labels of pairs), in ``dtype``, masked with ``fill``."""
  x = _checks.real(arg, x)
  if x.shape != tuple(shape):
    raise ValueError(f"{name()}: `{arg}` must have shape {tuple(shape)}{of}, got {arg}.shape={x.shape}.")
  return zero_masked(m, x.astype(dtype), fill=fill)


def signs(labels: jax.Array, m: jax.Array | None = None, arg: str = "labels") -> None:
  """Runtime check (under ``jl.checked``) that unmasked ``labels`` are -1 or +1."""
  ok = lambda: (labels == 1) | (labels == -1) | (False if m is None else ~m)
  _checks.debug_values(arg, labels, ok, "-1 or +1")


# Classes -----------------------------------------------------------------------------------------


def scores(arg: str, x, axis: int = -1) -> jax.Array:
  """Floating scores with a class axis, moved last."""
  x = _checks.floating(arg, x)
  if x.ndim == 0:
    raise ValueError(f"{name()}: `{arg}` must have a class axis, got a scalar.")
  return jnp.moveaxis(x, _checks.axis_index(axis, x.ndim), -1)


class Labels(NamedTuple):
  """Integer class labels, made safe to index with."""

  # each example's class; 0 where the label is out of range or not counted (the name shadows tuple.index)
  index: jax.Array  # type: ignore[assignment]
  in_range: jax.Array  # the label lies in [0, C)
  mask: jax.Array | None  # the examples that count: `where` and not `ignore_index`


def ignore_index(value) -> int | None:
  """``ignore_index``: None or an int (a TypeError otherwise, in every loss)."""
  if value is not None and not _checks.is_int(value):
    raise TypeError(f"{name()}: `ignore_index` must be None or an int, got {value!r}.")
  return None if value is None else int(value)


def class_labels(
  scores_name: str, x: jax.Array, labels, where, ignore: int | None = None, *, num_classes: int | None = None
) -> Labels:
  """Integer ``labels`` ``[...]`` for scores ``x`` ``[..., C]`` (class axis already last), checked and masked.

  An out-of-range label that is not ``ignore`` is reported by ``jl.checked``;
  without it the caller gives that example a NaN loss (``in_range`` is False).
  ``num_classes`` overrides ``x.shape[-1]`` (a vocabulary sharded over devices).
  """
  labels = _checks.integer("labels", labels)
  ignore = ignore_index(ignore)
  shape = x.shape[:-1]
  num_classes = x.shape[-1] if num_classes is None else num_classes
  if labels.shape != shape:
    raise ValueError(
      f"{name()}: integer `labels` (class indices) must have the shape of `{scores_name}` without the class axis,"
      f" {shape}, got labels.shape={labels.shape}."
    )
  m = mask(where, shape)
  if ignore is not None:
    kept = labels != ignore
    m = kept if m is None else m & kept
  in_range = (labels >= 0) & (labels < num_classes)
  expected = f"in [0, {num_classes})" + ("" if ignore is None else f" or ignore_index={ignore}")
  _checks.debug_values("labels", labels, lambda: in_range if m is None else in_range | ~m, expected)
  counted = in_range if m is None else in_range & m
  return Labels(jnp.where(counted, labels, jnp.zeros((), labels.dtype)), in_range, m)


def class_weights(arg: str, w, num_classes: int, dtype, *, scalar_ok: bool = False) -> jax.Array | None:
  """Per-class weights of shape ``[C]`` (or a scalar if ``scalar_ok``), in ``dtype``; None stays None."""
  if w is None:
    return None
  w = _checks.real(arg, w)
  if w.shape != (num_classes,) and not (scalar_ok and w.shape == ()):
    expected = f"a scalar or shape ({num_classes},)" if scalar_ok else f"shape ({num_classes},)"
    raise ValueError(f"{name()}: `{arg}` must have {expected} (one weight per class), got {arg}.shape={w.shape}.")
  return jnp.broadcast_to(w.astype(dtype), (num_classes,))


# Numeric options ---------------------------------------------------------------------------------


def number(
  arg: str,
  value,
  dtype=None,
  ok: Callable[[Any], Any] | None = None,
  expected: str = "a finite number",
  *,
  infinite_ok: bool = False,
  shapes: Sequence[tuple[int, ...]] = ((),),
):
  """A numeric option, as a constant or as a traced input (see :mod:`jaxloss._api`).

  A Python or NumPy scalar is validated now (``ok(value)``, and finite unless
  ``infinite_ok``: NaN always fails) and returned as a Python ``float``, which
  the compiled program folds in. An array or tracer is returned as an array of
  ``dtype`` (default float32) and one of ``shapes``; its value is checked at run
  time under ``jl.checked`` (``ok`` and NaN), and the docstring says what a bad
  value gives outside it. ``ok`` must work on a float and on an array (e.g.
  ``lambda d: d > 0``).
  """
  if is_array(value):
    x = jnp.asarray(value)
    if not (jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.integer)):
      raise TypeError(f"{name()}: `{arg}` must be a real number or array, got dtype {x.dtype}.")
    if x.shape not in tuple(tuple(s) for s in shapes):
      allowed = " or ".join(str(tuple(s)) for s in shapes)
      raise ValueError(f"{name()}: `{arg}` must have shape {allowed}, got {arg}.shape={x.shape}.")
    x = x.astype(np.float32 if dtype is None else dtype)
    good = lambda: (~jnp.isnan(x) if infinite_ok else jnp.isfinite(x)) & (True if ok is None else ok(x))
    _checks.debug_values(arg, x, good, expected)
    return x
  if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
    raise TypeError(f"{name()}: `{arg}` must be a number or an array, got {value!r}.")
  v = float(value)
  non_finite = math.isnan(v) or (math.isinf(v) and not infinite_ok)
  if non_finite or (ok is not None and not ok(v)):
    finite = " (and finite)" if non_finite and not math.isnan(v) and "finite" not in expected else ""
    raise ValueError(f"{name()}: `{arg}` must be {expected}{finite}, got {value!r}.")
  return v


def is_constant(value, *constants: float) -> bool:
  """``value`` is a constant (not traced) equal to one of ``constants``: the program may specialise on it."""
  return not is_array(value) and any(value == c for c in constants)


def label_smoothing(value, dtype=None):
  """``label_smoothing``, in ``[0, 1]``."""
  return number("label_smoothing", value, dtype, lambda s: (s >= 0) & (s <= 1), "in [0, 1]")
