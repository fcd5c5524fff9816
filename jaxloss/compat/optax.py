"""A drop-in mirror of ``optax.losses`` (0.2.8) built on jaxloss.

Change one import::

  from jaxloss.compat import optax as losses  # was: from optax import losses

Every public name of ``optax.losses`` is here with optax's signature, defaults
and per-element output shape (no ``reduction``: these return what optax
returns). Numeric options (``delta``, ``epsilon``, ``gamma``, ``temperature``,
``margin``, ...) may be traced, as in optax: a Python number is a compile-time
constant (validated as the public loss validates it, e.g. ``delta > 0``), an
array or tracer is an input (``jax.vmap`` and ``jax.grad`` over it work).
The values are optax's; the gradients and edges are jaxloss's:

* kinks take the minimum-norm subgradient: ``hinge_loss`` / ``perceptron_loss``
  / ``triplet_margin_loss`` have gradient 0 at the hinge (optax: a 0.5 split),
  ``multiclass_*`` losses average tied maxima;
* ``-inf`` logits with zero labels give 0 and finite gradients in every
  softmax cross-entropy (optax: NaN outside ``safe_softmax_cross_entropy``),
  ``kl_divergence*`` is 0 with a finite gradient where the target is 0,
  cosine similarities of a zero vector have gradient 0 (optax: NaN), a Dice
  ratio 0/0 is a perfect score;
* ``ctc_loss`` is exactly ``-log p`` from jaxloss's lattice: unreachable states
  are -inf, so ``log_epsilon`` is accepted and ignored, and a label sequence
  that cannot fit is ``+inf`` with gradient 0;
* ``triplet_margin_loss`` takes ``|a - p|`` to the power ``norm_degree`` (a
  p-norm for every degree; optax's value differs for odd degrees);
* ``softmax_cross_entropy_with_integer_labels`` gives ``+inf`` for a label on a
  class outside ``where`` (probability 0; optax: the other classes' normaliser
  minus that class's logit).

Each function adapts optax's conventions (implicit broadcasting, tuple axes,
a per-element ``where``, paddings instead of lengths) and calls a public loss
(``jl.cross_entropy``, ``jl.huber``, ``jl.ctc``, ...) with ``reduction="none"``;
those with no public counterpart (optax's floored cosine similarity, sparsemax,
multiclass perceptron, label smoothing, Fenchel-Young) use jaxloss's private
primitives (``jaxloss._custom``, ``_reduce``, ``_lattice``), never a family
module's helpers. Inputs are computed in float32 at least (half precision is
promoted), as in every jaxloss loss. Each function is ``jax.jit``-compiled
with its structural options (``axis``, ``blank_id``, ``reduce_fn``) static.
optax's own loss tests run against this module in ``tests/test_optax_suite.py``.

Example:
  >>> import jax
  >>> import jax.numpy as jnp
  >>> from jaxloss.compat import optax as losses
  >>> print(losses.huber_loss(jnp.array([0.5, 3.0]), delta=1.0))
  [0.125 2.5  ]
  >>> print(jax.grad(losses.hinge_loss)(jnp.array(1.0), jnp.array(1.0)) == 0)  # optax: -0.5
  True
"""

from __future__ import annotations

import functools
import math
import numbers
import operator
import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike
from optax import projections

import jaxloss as jl
from jaxloss import _checks, _custom, _inputs, _lattice, _reduce
from jaxloss._api import Numeric, Static, is_array, loss

__all__ = (
  "binary_dice_loss",
  "convex_kl_divergence",
  "cosine_distance",
  "cosine_similarity",
  "ctc_loss",
  "ctc_loss_with_forward_probs",
  "dice_loss",
  "generalized_kl_divergence",
  "hinge_loss",
  "huber_loss",
  "kl_divergence",
  "kl_divergence_with_log_targets",
  "l2_loss",
  "log_cosh",
  "make_fenchel_young_loss",
  "multiclass_generalized_dice_loss",
  "multiclass_hinge_loss",
  "multiclass_perceptron_loss",
  "multiclass_sparsemax_loss",
  "ntxent",
  "perceptron_loss",
  "poly_loss_cross_entropy",
  "ranking_softmax_loss",
  "safe_softmax_cross_entropy",
  "sigmoid_binary_cross_entropy",
  "sigmoid_focal_loss",
  "smooth_labels",
  "softmax_cross_entropy",
  "softmax_cross_entropy_with_integer_labels",
  "sparsemax_loss",
  "squared_error",
  "triplet_margin_loss",
)

_NAME = "jaxloss.compat.optax."

Axis = int | tuple[int, ...] | None


# Helpers: optax's argument conventions (broadcasting, axis tuples, per-element `where`) -----------


def _jit(fn):
  """The jaxloss decorator under the mirror's name (``Static`` options static, ``Numeric`` constant or traced)."""
  return loss(fn, public_name=_NAME + fn.__name__)


def _float(arg: str, x: ArrayLike, *others: ArrayLike | None) -> jax.Array:
  """``x`` as a floating array in jaxloss's compute dtype (float32 at least)."""
  array = _checks.floating(arg, x)
  return array.astype(_checks.compute_dtype(array, *(jnp.asarray(o) for o in others if o is not None)))


def _like(x: jax.Array, y: ArrayLike, shape: tuple[int, ...] | None = None) -> jax.Array:
  """``y`` cast to ``x``'s dtype and broadcast to ``shape`` (default ``x``'s), explicitly."""
  return jnp.broadcast_to(jnp.asarray(y).astype(x.dtype), x.shape if shape is None else shape)


def _broadcast(arg: str, x: ArrayLike, y: ArrayLike | None, *dtype_from: ArrayLike) -> tuple[jax.Array, jax.Array]:
  """``x`` (floating, compute dtype) and ``y`` in its dtype, both broadcast to one shape, as optax's arithmetic does.

  ``y`` defaults to zeros. The public losses take equal shapes; this is where
  optax's implicit broadcasting is made explicit.
  """
  a = _float(arg, x, y, *dtype_from)
  if y is None:
    return a, jnp.zeros_like(a)
  b = jnp.asarray(y)
  shape = jnp.broadcast_shapes(a.shape, b.shape)
  return jnp.broadcast_to(a, shape), _like(a, b, shape)


def _mask(where: ArrayLike | None, shape: tuple[int, ...]) -> jax.Array:
  """``where`` as a boolean array of ``shape``, all True when None."""
  if where is None:
    return jnp.ones(shape, bool)
  return jnp.broadcast_to(jnp.asarray(where).astype(bool), shape)


def _axes(axis: Axis, ndim: int) -> tuple[int, ...]:
  """``axis`` (int, tuple in the given order, or None for all) as non-negative axes."""
  if axis is None:
    return tuple(range(ndim))
  items = (axis,) if not isinstance(axis, (tuple, list)) else tuple(axis)
  out = []
  for a in items:
    a = operator.index(a)
    if not -ndim <= a < ndim:
      raise ValueError(f"axis {a} is out of bounds for array of dimension {ndim}")
    out.append(a % ndim)
  return tuple(out)


def _classes_last(axis: Axis, *arrays: jax.Array) -> tuple[jax.Array, ...]:
  """Arrays of one shape with the ``axis`` axes moved last and flattened into one class axis."""
  ndim = arrays[0].ndim
  axes = _axes(axis, ndim)
  batch = tuple(i for i in range(ndim) if i not in axes)
  shape = tuple(arrays[0].shape[i] for i in batch)
  return tuple(jnp.transpose(a, batch + axes).reshape(*shape, -1) for a in arrays)


def _excluded(axis: Axis, where: ArrayLike | None, *named: tuple[jax.Array, float]):
  """optax's per-element ``where`` over classes, for the public losses whose ``where`` selects whole examples.

  ``named`` are ``(array, fill)`` pairs of one shape. Returns each array with
  the ``axis`` axes moved last and flattened, the entries outside ``where`` set
  to its fill (a logit of ``-inf`` leaves the softmax, a label of 0 the sum),
  and the examples that keep an entry (None without ``where``). As in optax, a
  ``where`` of lower rank gets ``axis`` inserted.
  """
  arrays = tuple(x for x, _ in named)
  if where is None:
    return (*_classes_last(axis, *arrays), None)
  w = jnp.asarray(where)
  if w.ndim != arrays[0].ndim and axis is not None:
    w = jnp.expand_dims(w, axis)
  *flat, m = _classes_last(axis, *arrays, _mask(w, arrays[0].shape))
  out = tuple(jnp.where(m, x, jnp.asarray(fill, x.dtype)) for x, (_, fill) in zip(flat, named, strict=True))
  return (*out, jnp.any(m, axis=-1))


def _deprecated(name: str, replacement: str) -> None:
  warnings.warn(
    f"{name} is deprecated and will be removed, use {replacement} instead.", DeprecationWarning, stacklevel=3
  )


# Regression --------------------------------------------------------------------------------------


@_jit
def squared_error(predictions: ArrayLike, targets: ArrayLike | None = None) -> jax.Array:
  """``(predictions - targets) ** 2`` elementwise (``targets`` default to 0): ``jl.mse`` per element.

  Shapes must be equal (``ValueError`` otherwise), as in optax.
  """
  p = _float("predictions", predictions)
  return jl.mse(p, jnp.zeros_like(p) if targets is None else targets, reduction="none")


@_jit
def l2_loss(predictions: ArrayLike, targets: ArrayLike | None = None) -> jax.Array:
  """``0.5 * squared_error(predictions, targets)``."""
  return 0.5 * squared_error(predictions, targets)


@_jit
def huber_loss(predictions: ArrayLike, targets: ArrayLike | None = None, *, delta: Numeric = 1.0) -> jax.Array:
  """Huber loss elementwise: ``jl.huber`` per element (``delta > 0``; it may be traced)."""
  p, t = _broadcast("predictions", predictions, targets)
  return jl.huber(p, t, delta=delta, reduction="none")


@_jit
def log_cosh(predictions: ArrayLike, targets: ArrayLike | None = None) -> jax.Array:
  """``log(cosh(predictions - targets))`` elementwise: ``jl.log_cosh`` per element (accurate near 0, no overflow)."""
  p, t = _broadcast("predictions", predictions, targets)
  return jl.log_cosh(p, t, reduction="none")


@_jit
def cosine_similarity(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  epsilon: Numeric = 0.0,
  axis: Static[Axis] = -1,
  where: ArrayLike | None = None,
) -> jax.Array:
  """Cosine similarity over ``axis``; squared norms are floored at ``epsilon`` (it may be traced).

  The gradient at a zero vector is 0 (optax: NaN), and a floored norm passes no
  gradient (the minimum-norm subgradient of the floor at a tie). No public loss
  has optax's floor (``jl.cosine_embedding`` adds torch's ``1e-12``), so this is
  written here with jaxloss's primitives.
  """
  a = _float("predictions", predictions, targets)
  b = _like(a, _checks.floating("targets", targets))
  m = _mask(where, a.shape)
  a, b = jnp.where(m, a, 0), jnp.where(m, b, 0)
  axes = _axes(axis, a.ndim)
  eps = _inputs.number("epsilon", epsilon, a.dtype)

  def norm(x):
    squared = jnp.sum(x * x, axis=axes)
    return _custom.sqrt(jnp.where(squared > eps, squared, eps))

  return _reduce.safe_divide(jnp.sum(a * b, axis=axes), norm(a) * norm(b))


@_jit
def cosine_distance(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  epsilon: Numeric = 0.0,
  axis: Static[Axis] = -1,
  where: ArrayLike | None = None,
) -> jax.Array:
  """``1 - cosine_similarity(...)``."""
  return 1.0 - cosine_similarity(predictions, targets, epsilon=epsilon, axis=axis, where=where)


# Classification ----------------------------------------------------------------------------------


@_jit
def sigmoid_binary_cross_entropy(logits: ArrayLike, labels: ArrayLike) -> jax.Array:
  """Elementwise sigmoid cross-entropy: ``jl.binary_cross_entropy_with_logits`` per element; labels broadcast."""
  x, t = _broadcast("logits", logits, labels)
  return jl.binary_cross_entropy_with_logits(x, t, reduction="none")


@_jit
def hinge_loss(predictor_outputs: ArrayLike, targets: ArrayLike) -> jax.Array:
  """``max(0, 1 - s y)``: ``jl.hinge`` per element, gradient 0 at the hinge (optax: -0.5 y)."""
  s, y = _broadcast("predictor_outputs", predictor_outputs, targets)
  return jl.hinge(s, y, reduction="none")


@_jit
def perceptron_loss(predictor_outputs: ArrayLike, targets: ArrayLike) -> jax.Array:
  """``max(0, -s y)``: ``jl.hinge`` with margin 0, gradient 0 at ``s y = 0``; shapes must be equal."""
  s, y = _float("predictor_outputs", predictor_outputs), jnp.asarray(targets)
  _checks.same_shape(("predictor_outputs", s), ("targets", y))
  return jl.hinge(s, _like(s, y), margin=0.0, reduction="none")


@_jit
def sparsemax_loss(logits: ArrayLike, labels: ArrayLike) -> jax.Array:
  """Binary sparsemax loss ``sparse_plus(-x)`` for label 1, ``sparse_plus(x)`` for 0 (smooth; no public loss)."""
  x = _float("logits", logits)
  return jax.nn.sparse_plus(jnp.where(jnp.asarray(labels).astype(bool), -x, x))


def _probability_cross_entropy(
  logits: ArrayLike, labels: ArrayLike, axis: Axis, where: ArrayLike | None, epsilon: Numeric | None = None
) -> jax.Array:
  """``jl.cross_entropy`` (or ``jl.poly_cross_entropy``) with probability labels under optax's conventions.

  Labels broadcast to the logits, ``axis`` may be a tuple (the classes are the
  flattened axes) and ``where`` selects classes: the others get logit ``-inf``
  and label 0, which jaxloss's cross-entropies count as exactly 0 with a zero
  gradient, and an example with no class left has loss 0 (a masked example).
  """
  x = _float("logits", logits)
  x, q, selected = _excluded(axis, where, (x, -jnp.inf), (_like(x, labels), 0.0))
  if epsilon is None:
    return jl.cross_entropy(x, q, where=selected, reduction="none")
  return jl.poly_cross_entropy(x, q, epsilon=epsilon, where=selected, reduction="none")


@_jit
def safe_softmax_cross_entropy(logits: ArrayLike, labels: ArrayLike) -> jax.Array:
  """Softmax cross-entropy over the last axis (``jl.cross_entropy``); ``0 * log 0 = 0`` for ``-inf`` logits."""
  return _probability_cross_entropy(logits, labels, -1, None)


@_jit
def softmax_cross_entropy(
  logits: ArrayLike,
  labels: ArrayLike,
  axis: Static[Axis] = -1,
  where: ArrayLike | None = None,
) -> jax.Array:
  """Softmax cross-entropy over ``axis`` with probability labels; ``where`` selects classes (or examples).

  ``jl.cross_entropy`` with probability labels: ``-inf`` logits with label 0
  contribute 0 with a finite gradient, and an example with nothing selected has loss 0.
  """
  return _probability_cross_entropy(logits, labels, axis, where)


@_jit
def softmax_cross_entropy_with_integer_labels(
  logits: ArrayLike,
  labels: ArrayLike,
  axis: Static[int | tuple[int, ...]] = -1,
  where: ArrayLike | None = None,
) -> jax.Array:
  """``jl.cross_entropy`` with integer labels over ``axis`` (a tuple: flat indices into those axes).

  ``where`` selects classes; an example with none has loss 0, and a label on a
  class outside ``where`` has probability 0: loss ``+inf`` (optax subtracts
  that class's logit from the normaliser of the others).
  """
  if not isinstance(axis, (int, tuple)):
    raise ValueError(
      f"{_checks.name()}: `axis` must be an int or a tuple of ints, got {type(axis)}."  # optax's ValueError
    )
  x = _float("logits", logits)
  y = _checks.integer("labels", labels)
  x, selected = _excluded(axis, where, (x, -jnp.inf))
  return jl.cross_entropy(x, y, where=selected, reduction="none")


@_jit
def multiclass_hinge_loss(scores: ArrayLike, labels: ArrayLike) -> jax.Array:
  """``max_c (s_c + 1 - [c = y]) - s_y``: ``jl.multiclass_hinge`` per example (ties averaged, 0 at the hinge)."""
  return jl.multiclass_hinge(scores, labels, reduction="none")


@_jit
def multiclass_perceptron_loss(scores: ArrayLike, labels: ArrayLike) -> jax.Array:
  """``max_c s_c - s_y``; a tied maximum shares the gradient equally (the minimum-norm subgradient)."""
  s = _float("scores", scores)
  y = _checks.integer("labels", labels)
  return _custom.max(s) - jnp.take_along_axis(s, y[..., None], axis=-1)[..., 0]


@_jit
def poly_loss_cross_entropy(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  epsilon: Numeric = 2.0,
  axis: Static[Axis] = -1,
  where: ArrayLike | None = None,
) -> jax.Array:
  """PolyLoss-1: ``jl.poly_cross_entropy`` with probability labels; ``epsilon`` may be traced."""
  _checks.floating("labels", labels)
  return _probability_cross_entropy(logits, labels, axis, where, epsilon)


def _kl(
  log_predictions: ArrayLike, targets: ArrayLike, axis: Axis, where: ArrayLike | None, *, log_targets: bool
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array | None]:
  """``jl.kl_divergence`` per example over ``axis`` (int, tuple or None); ``where`` selects elements.

  Elements outside ``where`` become absent classes (target 0, log-target
  ``-inf``): exactly 0 with a zero gradient. Also returns the flattened
  ``log_predictions``, targets and the element mask (None without ``where``).
  """
  lp = _float("log_predictions", log_predictions, targets)
  t = _like(lp, _checks.floating("log_targets" if log_targets else "targets", targets))
  m = None if where is None else _mask(where, lp.shape)  # broadcast as optax's sum(..., where=) does
  lp, t, _ = _excluded(axis, m, (lp, 0.0), (t, -jnp.inf if log_targets else 0.0))
  kl = jl.kl_divergence(lp, t, log_targets=log_targets, reduction="none")
  return kl, lp, t, None if m is None else _classes_last(axis, m)[0]


@_jit
def kl_divergence(
  log_predictions: ArrayLike,
  targets: ArrayLike,
  axis: Static[Axis] = -1,
  where: ArrayLike | None = None,
) -> jax.Array:
  """``sum t (log t - log_predictions)`` over ``axis``: ``jl.kl_divergence`` (0, finite gradient, where t = 0)."""
  return _kl(log_predictions, targets, axis, where, log_targets=False)[0]


@_jit
def kl_divergence_with_log_targets(
  log_predictions: ArrayLike,
  log_targets: ArrayLike,
  axis: Static[Axis] = -1,
  where: ArrayLike | None = None,
) -> jax.Array:
  """``kl_divergence`` with log-space targets: ``jl.kl_divergence(..., log_targets=True)``."""
  return _kl(log_predictions, log_targets, axis, where, log_targets=True)[0]


@_jit
def generalized_kl_divergence(
  log_predictions: ArrayLike,
  targets: ArrayLike,
  axis: Static[Axis] = -1,
  where: ArrayLike | None = None,
) -> jax.Array:
  """KL for unnormalised distributions: ``jl.kl_divergence`` ``+ sum(p - t)`` over ``axis``."""
  kl, lp, t, m = _kl(log_predictions, targets, axis, where, log_targets=False)
  rest = jnp.exp(lp) - t
  return kl + jnp.sum(rest if m is None else jnp.where(m, rest, 0), axis=-1)


def convex_kl_divergence(
  log_predictions: ArrayLike,
  targets: ArrayLike,
  axis: Axis = -1,
  where: ArrayLike | None = None,
) -> jax.Array:
  """Deprecated alias of :func:`generalized_kl_divergence` (warns, as optax does)."""
  _deprecated("convex_kl_divergence", "generalized_kl_divergence")
  return generalized_kl_divergence(log_predictions, targets, axis=axis, where=where)


def _ctc_inputs(
  logits: ArrayLike, logit_paddings: ArrayLike, labels: ArrayLike, label_paddings: ArrayLike
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """optax's checks and its paddings as lengths (``T - sum(paddings)``) for ``jl.ctc``."""
  x = _checks.floating("logits", logits)
  y = _checks.integer("labels", labels)
  if x.ndim != 3 or y.ndim != 2:
    raise ValueError(f"{_checks.name()}: expected logits [B, T, K] and labels [B, N], got {x.shape} and {y.shape}.")
  _checks.same_shape(("labels", y), ("label_paddings", jnp.asarray(label_paddings)))
  _checks.same_shape(("logits[..., 0]", x[..., 0]), ("logit_paddings", jnp.asarray(logit_paddings)))
  if y.shape[0] != x.shape[0]:
    raise ValueError(f"{_checks.name()}: expected `labels` to have batch size {x.shape[0]}, got {y.shape[0]}.")
  logit_lengths = x.shape[1] - jnp.sum(jnp.asarray(logit_paddings), axis=1).astype(jnp.int32)
  label_lengths = y.shape[1] - jnp.sum(jnp.asarray(label_paddings), axis=1).astype(jnp.int32)
  return x, y.astype(jnp.int32), logit_lengths, label_lengths


@_jit
def ctc_loss_with_forward_probs(
  logits: ArrayLike,
  logit_paddings: ArrayLike,
  labels: ArrayLike,
  label_paddings: ArrayLike,
  *,
  blank_id: Static[int] = 0,
  log_epsilon: Numeric = -1e5,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """CTC loss ``[B]`` (``jl.ctc``) and forward log-probabilities ``[T, B, N + 1]`` (blank) and ``[T, B, N]`` (label).

  The forward variables come from jaxloss's lattice (``jaxloss._lattice``, the
  recursion ``jl.ctc`` runs): unreachable states are exactly -inf, so
  ``log_epsilon`` is accepted and ignored. As in optax, the last blank row also
  holds the label that ends there.
  """
  del log_epsilon
  x, y, logit_lengths, label_lengths = _ctc_inputs(logits, logit_paddings, labels, label_paddings)
  loss = jl.ctc(x, y, logit_lengths=logit_lengths, label_lengths=label_lengths, blank=blank_id, reduction="none")
  emissions = _lattice.emissions(x.astype(_checks.compute_dtype(x)), jnp.clip(y, 0, x.shape[-1] - 1), blank_id)
  _, (blank, label) = _lattice.alphas(*emissions, logit_lengths, keep=True)
  last = jnp.concatenate([blank[-1, :, :1], _lattice.log_sum_exp(blank[-1, :, 1:], label[-1])], axis=-1)
  return loss, blank.at[-1].set(last), label


@_jit
def ctc_loss(
  logits: ArrayLike,
  logit_paddings: ArrayLike,
  labels: ArrayLike,
  label_paddings: ArrayLike,
  *,
  blank_id: Static[int] = 0,
  log_epsilon: Numeric = -1e5,
) -> jax.Array:
  """CTC loss per sequence from paddings: ``jl.ctc(..., reduction="none")``; ``log_epsilon`` is ignored."""
  del log_epsilon
  x, y, logit_lengths, label_lengths = _ctc_inputs(logits, logit_paddings, labels, label_paddings)
  return jl.ctc(x, y, logit_lengths=logit_lengths, label_lengths=label_lengths, blank=blank_id, reduction="none")


@_jit
def sigmoid_focal_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  alpha: Numeric | None = None,
  gamma: Numeric = 2.0,
) -> jax.Array:
  """Sigmoid focal loss elementwise: ``jl.sigmoid_focal`` per element; ``alpha=None`` disables the class balance.

  ``alpha`` (at most 1) and ``gamma`` (non-negative) may be traced; a traced
  negative ``alpha`` disables the balance, as ``jl.sigmoid_focal`` does.
  """
  x, t = _broadcast("logits", logits, labels)
  return jl.sigmoid_focal(x, t, alpha=-1.0 if alpha is None else alpha, gamma=gamma, reduction="none")


@_jit
def multiclass_sparsemax_loss(scores: ArrayLike, labels: ArrayLike) -> jax.Array:
  """Multiclass sparsemax loss ``<p, s> - s_y + (1 - |p|^2) / 2`` with ``p = sparsemax(s)``; gradient ``p - e_y``."""
  s = _float("scores", scores)
  y = _checks.integer("labels", labels)
  proba = jnp.vectorize(projections.projection_simplex, signature="(n)->(n)")(s)
  s_y = jnp.take_along_axis(s, y[..., None], axis=-1)[..., 0]
  return jnp.sum(proba * s, axis=-1) - s_y + 0.5 * (1 - jnp.sum(proba * proba, axis=-1))


# Self-supervised ---------------------------------------------------------------------------------


@_jit
def ntxent(embeddings: ArrayLike, labels: ArrayLike, temperature: Numeric = 0.07) -> jax.Array:
  """NT-Xent averaged over positive pairs (a scalar): ``jl.ntxent`` weighted by each anchor's number of positives.

  ``temperature > 0`` may be traced (a learned temperature).
  """
  x = _float("embeddings", embeddings)
  y = _checks.integer("labels", labels)
  if y.shape[0] != x.shape[0]:
    raise ValueError(
      f"Labels and embeddings must have the same leading dimension, found {y.shape[0]} for labels and"
      f" {x.shape[0]} for embeddings."
    )
  # Each anchor's positives: the others with its label. Written as jl.ntxent counts them, so XLA computes the
  # count once (common subexpressions): the weights cost nothing.
  same = y[..., :, None] == y[..., None, :]
  others = jnp.broadcast_to(~jnp.eye(y.shape[-1], dtype=bool), same.shape)
  positives = jnp.sum(same & others, axis=-1).astype(x.dtype)
  return jl.ntxent(x, y, temperature=temperature, weights=positives)


@_jit
def triplet_margin_loss(
  anchors: ArrayLike,
  positives: ArrayLike,
  negatives: ArrayLike,
  axis: Static[int] = -1,
  norm_degree: Numeric = 2,
  margin: Numeric = 1.0,
  eps: Numeric = 1e-6,
) -> jax.Array:
  """``max(0, d(a, p) - d(a, n) + margin)``, ``d(x, y) = (sum |x - y|^q + eps)^(1/q)`` over ``axis``.

  The hinge is ``jl.margin_ranking`` of the two distances; the distance is
  optax's (``jl.triplet_margin`` has torch's ``||x - y + eps||_p`` and a static
  degree). Gradient 0 at the hinge (optax: 0.5). Options may be traced.
  """
  a = _float("anchors", anchors, positives, negatives)
  p = _like(a, _checks.floating("positives", positives))
  n = _like(a, _checks.floating("negatives", negatives))
  q = _inputs.number("norm_degree", norm_degree, a.dtype)
  shift = _inputs.number("eps", eps, a.dtype)

  def distance(x: jax.Array, y: jax.Array) -> jax.Array:
    return (jnp.sum(_custom.abs(x - y) ** q, axis=axis) + shift) ** (1 / q)

  closer, farther = distance(a, p), distance(a, n)
  return jl.margin_ranking(farther, closer, jnp.ones_like(closer), margin=margin, reduction="none")


# Ranking -----------------------------------------------------------------------------------------


@_jit
def ranking_softmax_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduce_fn: Static[Callable[..., ArrayLike] | None] = jnp.mean,
) -> jax.Array:
  """Listwise softmax loss ``-sum_i y_i log softmax(s)_i`` per list, with optax's unnormalised labels.

  ``jl.softmax_ranking`` (which normalises the labels) times each list's label
  sum. ``where`` masks items; lists with no valid item have loss 0 and leave
  the mean (value and gradient 0, never NaN). ``reduce_fn`` is ``jnp.mean``,
  ``jnp.sum`` (both through ``jaxloss``'s reduction) or any callable taking ``where=``.
  """
  x, y = _broadcast("logits", logits, labels)
  if weights is not None:
    y = y * _like(x, weights)
  m = None if where is None else _mask(where, x.shape)
  total = jnp.sum(y if m is None else jnp.where(m, y, 0), axis=-1)
  loss = total * jl.softmax_ranking(x, y, where=m, reduction="none")
  lists = None if m is None else jnp.any(m, axis=-1)
  if reduce_fn is jnp.mean or reduce_fn is jnp.sum:
    return _reduce.reduce(loss, reduction="mean" if reduce_fn is jnp.mean else "sum", where=lists)
  if reduce_fn is None:
    return loss
  return jnp.asarray(reduce_fn(loss, where=lists))


# Segmentation ------------------------------------------------------------------------------------


def dice_loss(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  class_weights: ArrayLike | None = None,
  smooth: Numeric = 1.0,
  alpha: Numeric = 0.5,
  beta: Numeric = 0.5,
  apply_softmax: bool = True,
  reduction: str = "mean",
  ignore_background: bool = False,
  axis: Axis = None,
) -> jax.Array:
  """``jl.tversky`` per example and class, reduced over classes by ``reduction``.

  ``predictions`` are ``[B, ..., C]`` logits (softmax, or sigmoid for ``C = 1``)
  or probabilities with ``apply_softmax=False``; the ratio is over ``axis``
  (default: the spatial axes). ``smooth``, ``alpha`` and ``beta`` (non-negative)
  may be traced; a 0/0 ratio is a perfect score.
  """
  fn = _NAME + "dice_loss"
  p, t = jnp.asarray(predictions), jnp.asarray(targets)
  if p.ndim == t.ndim - 1:
    p = p[..., None]
  if t.ndim == p.ndim - 1:
    t = t[..., None]
  _checks.same_shape(("predictions", p), ("targets", t))
  p = _float("predictions", p)
  t = _like(p, t)
  if not apply_softmax:
    sums = jnp.sum(p, axis=-1)
    if not jnp.allclose(sums, 1.0, rtol=1e-5):
      raise ValueError(
        f"{fn}: with apply_softmax=False, `predictions` must be valid probability distributions that sum to 1 along"
        f" the class axis. Found sum range: [{jnp.min(sums):.6f}, {jnp.max(sums):.6f}]"
      )
  axes = tuple(range(1, p.ndim - 1)) if axis is None else _axes(axis, p.ndim)
  weights = None
  if class_weights is not None:
    weights = jnp.asarray(class_weights)
    if weights.ndim != 1:
      raise ValueError(f"{fn}: `class_weights` must have rank 1, got shape {weights.shape}.")
  if reduction not in ("mean", "sum", "none"):
    raise ValueError(f"Unsupported reduction: {reduction}")
  options = {}
  for arg, value in (("smooth", smooth), ("alpha", alpha), ("beta", beta)):
    if not is_array(value) and not (isinstance(value, numbers.Real) and math.isfinite(value) and value >= 0):
      raise ValueError(f"{fn}: `{arg}` must be a non-negative number, got {value!r}.")
    # Always traced: one program per shape for every smooth / alpha / beta (optax's tests sweep them eagerly).
    options[arg] = jnp.asarray(value, p.dtype)
  return _dice(
    p,
    t,
    weights,
    **options,
    apply_softmax=apply_softmax,
    reduction=reduction,
    ignore_background=ignore_background,
    axes=axes,
  )


@functools.partial(loss, public_name=_NAME + "dice_loss")
def _dice(
  p: jax.Array,
  t: jax.Array,
  class_weights: jax.Array | None,
  *,
  smooth: Numeric,
  alpha: Numeric,
  beta: Numeric,
  apply_softmax: Static[bool],
  reduction: Static[str],
  ignore_background: Static[bool],
  axes: Static[tuple[int, ...]],
) -> jax.Array:
  """:func:`dice_loss` after validation, compiled once per shape (optax's tests call it eagerly on large images)."""
  if apply_softmax:
    p = jax.nn.sigmoid(p) if p.shape[-1] == 1 else jax.nn.softmax(p, axis=-1)
  loss = jl.tversky(p, t, alpha=alpha, beta=beta, smooth=smooth, axis=axes, reduction="none")
  if class_weights is not None:
    loss = loss * _like(loss, class_weights)
  if ignore_background and p.shape[-1] > 1:
    loss = loss[..., 1:]
  if reduction == "none":
    return loss
  return jnp.mean(loss, axis=-1) if reduction == "mean" else jnp.sum(loss, axis=-1)


def multiclass_generalized_dice_loss(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  smooth: Numeric = 1.0,
  apply_softmax: bool = True,
  ignore_background: bool = False,
) -> jax.Array:
  """Generalised Dice: :func:`dice_loss` with class weights ``1 / (frequency^2 + 1e-7)`` normalised to mean 1."""
  p, t = jnp.asarray(predictions), jnp.asarray(targets)
  _checks.same_shape(("predictions", p), ("targets", t))
  frequency = jnp.sum(t, axis=tuple(range(t.ndim - 1))).astype(_checks.compute_dtype(p))
  class_weights = 1.0 / (frequency**2 + 1e-7)
  class_weights = class_weights / jnp.sum(class_weights) * class_weights.shape[0]
  loss = dice_loss(
    p,
    t,
    class_weights=class_weights,
    smooth=smooth,
    apply_softmax=apply_softmax,
    reduction="none",
    ignore_background=ignore_background,
  )
  return jnp.mean(loss)


def binary_dice_loss(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  smooth: Numeric = 1.0,
  apply_sigmoid: bool = True,
) -> jax.Array:
  """Binary Dice loss per example: :func:`dice_loss` on one sigmoid channel."""
  p, t = jnp.asarray(predictions), jnp.asarray(targets)
  if p.ndim == t.ndim and p.shape[-1] != 1:
    p, t = p[..., None], t[..., None]
  return dice_loss(p, t, smooth=smooth, apply_softmax=apply_sigmoid, reduction="mean")


# Smoothing and Fenchel-Young ---------------------------------------------------------------------


@_jit
def smooth_labels(
  labels: ArrayLike,
  alpha: Numeric,
  *,
  axis: Static[Axis] = -1,
  where: ArrayLike | None = None,
) -> jax.Array:
  """``(1 - alpha) * labels + alpha / C`` with ``C`` the number of (selected) classes along ``axis``."""
  y = _float("labels", labels)
  if where is None:
    classes = jnp.asarray(math.prod(y.shape[a] for a in _axes(axis, y.ndim)), y.dtype)
  else:
    classes = jnp.sum(jnp.asarray(where), axis=axis, keepdims=True).astype(y.dtype)
  mix = _inputs.number("alpha", alpha, y.dtype)
  return (1.0 - mix) * y + mix / classes


def make_fenchel_young_loss(max_fun: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
  """The Fenchel-Young loss ``max_fun(scores) - <targets, scores>`` over the last axis, for a convex ``max_fun``.

  Its gradient in ``scores`` is ``grad max_fun(scores) - targets``
  (Blondel, Martins, Niculae, "Learning with Fenchel-Young Losses", JMLR 2020).
  """
  max_last = jnp.vectorize(max_fun, signature="(n)->()")

  def fenchel_young_loss(scores: ArrayLike, targets: ArrayLike, *args, **kwargs) -> jax.Array:
    s = jnp.asarray(scores)
    return max_last(s, *args, **kwargs) - jnp.sum(_like(s, targets) * s, axis=-1)

  return fenchel_young_loss
