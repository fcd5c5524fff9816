"""A drop-in mirror of ``optax.losses`` (0.2.8) built on jaxloss.

Change one import::

  from jaxloss.compat import optax as losses  # was: from optax import losses

Every public name of ``optax.losses`` is here with optax's signature, defaults
and per-element output shape (no ``reduction``: these return what optax
returns). Options such as ``delta`` or ``epsilon`` may be traced, as in optax.
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
  p-norm for every degree; optax's value differs for odd degrees).

Inputs are computed in float32 at least (half precision is promoted), as in
every jaxloss loss. Each function is ``jax.jit``-compiled with its non-array
options (``axis``, ``blank_id``, ``reduce_fn``) static. optax's own loss tests
run against this module in ``tests/test_optax_suite.py``.

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
import operator
import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike
from optax import projections

import jaxloss as jl
from jaxloss import (
  _checks,
  _custom,
  _reduce,
  classification,
  divergence,
  embedding,
  regression,
  segmentation,
  sequence,
)
from jaxloss._api import Static, loss

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


# Helpers -----------------------------------------------------------------------------------------


def _jit(fn):
  """The jaxloss decorator under the mirror's name; options annotated ``Static`` are static, the others traced."""
  return loss(fn, public_name=_NAME + fn.__name__)


def _float(fn: str, name: str, x, *others) -> jax.Array:
  """``x`` as a floating array in jaxloss's compute dtype (float32 at least)."""
  x = _checks.floating(name, x)
  return x.astype(_checks.compute_dtype(x, *(jnp.asarray(o) for o in others if o is not None)))


def _like(x: jax.Array, y, shape=None) -> jax.Array:
  """``y`` cast to ``x``'s dtype and broadcast to ``shape`` (default ``x``'s), explicitly."""
  return jnp.broadcast_to(jnp.asarray(y).astype(x.dtype), x.shape if shape is None else shape)


def _error(fn: str, predictions, targets) -> jax.Array:
  """``predictions - targets`` (targets default to zeros and broadcast, as in optax)."""
  p = _float(fn, "predictions", predictions, targets)
  if targets is None:
    return p
  t = jnp.asarray(targets)
  shape = jnp.broadcast_shapes(p.shape, t.shape)
  return jnp.broadcast_to(p, shape) - _like(p, t, shape)


def _mask(where, shape) -> jax.Array:
  """``where`` as a boolean array of ``shape``, all True when None."""
  if where is None:
    return jnp.ones(shape, bool)
  return jnp.broadcast_to(jnp.asarray(where).astype(bool), shape)


def _axes(axis, ndim: int) -> tuple[int, ...]:
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


def _classes_last(axis, *arrays: jax.Array) -> tuple[jax.Array, ...]:
  """Arrays of one shape with the ``axis`` axes moved last and flattened into one class axis."""
  ndim = arrays[0].ndim
  axes = _axes(axis, ndim)
  batch = tuple(i for i in range(ndim) if i not in axes)
  shape = tuple(arrays[0].shape[i] for i in batch)
  return tuple(jnp.transpose(a, batch + axes).reshape(*shape, -1) for a in arrays)


def _softmax_inputs(fn: str, logits, labels, axis, where, labels_like_logits: bool = True):
  """Logits, labels (broadcast to the logits), a per-logit mask, class axis last; masked entries zeroed."""
  x = _float(fn, "logits", logits)
  if where is not None:
    where = jnp.asarray(where)
    if where.ndim != x.ndim:
      where = jnp.expand_dims(where, axis)
  m = _mask(where, x.shape)
  if labels_like_logits:
    q = _like(x, labels)
    x, q, m = _classes_last(axis, x, q, m)
    return jnp.where(m, x, 0), jnp.where(m, q, 0), m
  x, m = _classes_last(axis, x, m)
  return jnp.where(m, x, 0), m


def _softmax_cross_entropy(x: jax.Array, q: jax.Array, m: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``-sum_c q_c log softmax(x)_c`` over the selected classes (0 log 0 = 0), and the log-normaliser."""
  lse = classification._logsumexp_where(x, m)
  return classification._neg_log_softmax_sum(x, lse, q), lse


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
  p = _float("squared_error", "predictions", predictions)
  t = jnp.zeros_like(p) if targets is None else targets
  return jl.mse(p, t, reduction="none")


@_jit
def l2_loss(predictions: ArrayLike, targets: ArrayLike | None = None) -> jax.Array:
  """``0.5 * squared_error(predictions, targets)``."""
  return 0.5 * squared_error(predictions, targets)


@_jit
def huber_loss(predictions: ArrayLike, targets: ArrayLike | None = None, *, delta: ArrayLike = 1.0) -> jax.Array:
  """Huber loss elementwise (``jl.huber``); ``delta`` may be traced."""
  error = _error("huber_loss", predictions, targets)
  return regression._huber(error, jnp.asarray(delta).astype(error.dtype))


@_jit
def log_cosh(predictions: ArrayLike, targets: ArrayLike | None = None) -> jax.Array:
  """``log(cosh(predictions - targets))`` elementwise (``jl.log_cosh``: accurate near 0, no overflow)."""
  return _custom.log_cosh(_error("log_cosh", predictions, targets))


@_jit
def cosine_similarity(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  epsilon: ArrayLike = 0.0,
  axis: Static[int | tuple[int, ...] | None] = -1,
  where: ArrayLike | None = None,
) -> jax.Array:
  """Cosine similarity over ``axis``; squared norms are floored at ``epsilon``.

  The gradient at a zero vector is 0 (optax: NaN), and a floored norm passes no
  gradient (the minimum-norm subgradient of the floor at a tie).
  """
  a = _float("cosine_similarity", "predictions", predictions, targets)
  b = _like(a, _checks.floating("targets", targets))
  m = _mask(where, a.shape)
  a, b = jnp.where(m, a, 0), jnp.where(m, b, 0)
  axes = _axes(axis, a.ndim)
  eps = jnp.asarray(epsilon).astype(a.dtype)

  def norm(x):
    squared = jnp.sum(x * x, axis=axes)
    return _custom.sqrt(jnp.where(squared > eps, squared, eps))

  return _reduce.safe_divide(jnp.sum(a * b, axis=axes), norm(a) * norm(b))


@_jit
def cosine_distance(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  epsilon: ArrayLike = 0.0,
  axis: Static[int | tuple[int, ...] | None] = -1,
  where: ArrayLike | None = None,
) -> jax.Array:
  """``1 - cosine_similarity(...)``."""
  return 1.0 - cosine_similarity(predictions, targets, epsilon=epsilon, axis=axis, where=where)


# Classification ----------------------------------------------------------------------------------


@_jit
def sigmoid_binary_cross_entropy(logits, labels):
  """Elementwise sigmoid cross-entropy (``jl.binary_cross_entropy_with_logits`` per element); labels broadcast."""
  x = _float("sigmoid_binary_cross_entropy", "logits", logits)
  t = jnp.asarray(labels)
  shape = jnp.broadcast_shapes(x.shape, t.shape)
  return classification._sigmoid_cross_entropy(jnp.broadcast_to(x, shape), _like(x, t, shape))


def _signed_margin(fn: str, predictor_outputs, targets) -> jax.Array:
  s = _float(fn, "predictor_outputs", predictor_outputs)
  y = jnp.asarray(targets)
  shape = jnp.broadcast_shapes(s.shape, y.shape)
  return jnp.broadcast_to(s, shape) * _like(s, y, shape)


@_jit
def hinge_loss(predictor_outputs: ArrayLike, targets: ArrayLike) -> jax.Array:
  """``max(0, 1 - s y)`` (``jl.hinge`` per element), gradient 0 at the hinge (optax: -0.5 y)."""
  return jax.nn.relu(1 - _signed_margin("hinge_loss", predictor_outputs, targets))


@_jit
def perceptron_loss(predictor_outputs: ArrayLike, targets: ArrayLike) -> jax.Array:
  """``max(0, -s y)``, gradient 0 at ``s y = 0``; shapes must be equal."""
  fn = "perceptron_loss"
  s, y = _float(fn, "predictor_outputs", predictor_outputs), jnp.asarray(targets)
  _checks.same_shape(("predictor_outputs", s), ("targets", y))
  return jax.nn.relu(-_signed_margin(fn, s, y))


@_jit
def sparsemax_loss(logits: ArrayLike, labels: ArrayLike) -> jax.Array:
  """Binary sparsemax loss ``sparse_plus(-x)`` for label 1, ``sparse_plus(x)`` for 0 (smooth)."""
  x = _float("sparsemax_loss", "logits", logits)
  return jax.nn.sparse_plus(jnp.where(jnp.asarray(labels).astype(bool), -x, x))


@_jit
def safe_softmax_cross_entropy(logits: ArrayLike, labels: ArrayLike) -> jax.Array:
  """Softmax cross-entropy over the last axis; ``0 * log 0 = 0`` for ``-inf`` logits with label 0."""
  x, q, m = _softmax_inputs("safe_softmax_cross_entropy", logits, labels, -1, None)
  return _softmax_cross_entropy(x, q, m)[0]


@_jit
def softmax_cross_entropy(
  logits: ArrayLike,
  labels: ArrayLike,
  axis: Static[int | tuple[int, ...] | None] = -1,
  where: ArrayLike | None = None,
) -> jax.Array:
  """Softmax cross-entropy over ``axis`` with probability labels; ``where`` selects classes (or examples).

  As ``jl.cross_entropy`` with probability labels: ``-inf`` logits with label 0
  contribute 0 with a finite gradient, and an example with nothing selected has loss 0.
  """
  x, q, m = _softmax_inputs("softmax_cross_entropy", logits, labels, axis, where)
  return _softmax_cross_entropy(x, q, m)[0]


@_jit
def softmax_cross_entropy_with_integer_labels(
  logits: ArrayLike,
  labels: ArrayLike,
  axis: Static[int | tuple[int, ...]] = -1,
  where: ArrayLike | None = None,
) -> jax.Array:
  """Softmax cross-entropy with integer labels over ``axis`` (a tuple: flat indices into those axes)."""
  fn = "softmax_cross_entropy_with_integer_labels"
  if not isinstance(axis, (int, tuple)):
    raise ValueError(f"{_NAME}{fn}: `axis` must be an int or a tuple of ints, got {type(axis)}.")
  y = _checks.integer("labels", labels)
  x, m = _softmax_inputs(fn, logits, None, axis, where, labels_like_logits=False)
  lse = classification._logsumexp_where(x, m)
  picked = jnp.take_along_axis(x, y[..., None], axis=-1)[..., 0]
  selected = jnp.any(m, axis=-1)
  return jnp.where(selected, jnp.where(selected, lse, 0) - picked, 0)


@_jit
def multiclass_hinge_loss(scores: ArrayLike, labels: ArrayLike) -> jax.Array:
  """``max_c (s_c + 1 - [c = y]) - s_y``: ``jl.multiclass_hinge`` per example (ties averaged, 0 at the hinge)."""
  return jl.multiclass_hinge(scores, labels, reduction="none")


@_jit
def multiclass_perceptron_loss(scores: ArrayLike, labels: ArrayLike) -> jax.Array:
  """``max_c s_c - s_y``; a tied maximum shares the gradient equally (the minimum-norm subgradient)."""
  s = _float("multiclass_perceptron_loss", "scores", scores)
  y = _checks.integer("labels", labels)
  return _custom.max(s) - jnp.take_along_axis(s, y[..., None], axis=-1)[..., 0]


@_jit
def poly_loss_cross_entropy(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  epsilon: ArrayLike = 2.0,
  axis: Static[int | tuple[int, ...] | None] = -1,
  where: ArrayLike | None = None,
) -> jax.Array:
  """PolyLoss-1: softmax cross-entropy ``+ epsilon * sum_c q_c (1 - p_c)``; ``epsilon`` may be traced."""
  fn = "poly_loss_cross_entropy"
  _checks.floating("labels", labels)
  x, q, m = _softmax_inputs(fn, logits, labels, axis, where)
  ce, lse = _softmax_cross_entropy(x, q, m)
  log_p = jnp.where(m, x - jnp.where(jnp.isfinite(lse), lse, 0)[..., None], 0)
  one_minus_p = jnp.sum(jnp.where(m, q * -jnp.expm1(log_p), 0), axis=-1)
  return ce + jnp.asarray(epsilon).astype(ce.dtype) * one_minus_p


def _kl_terms(fn: str, log_predictions, targets, where, *, log_targets: bool) -> jax.Array:
  lp = _float(fn, "log_predictions", log_predictions, targets)
  t = _like(lp, _checks.floating("log_targets" if log_targets else "targets", targets))
  m = _mask(where, lp.shape)
  lp, t = jnp.where(m, lp, 0), jnp.where(m, t, -jnp.inf if log_targets else 0)
  log_t = t if log_targets else _custom.safe_log(t)
  return divergence._relative_entropy_terms(log_t, lp), lp, t


@_jit
def kl_divergence(
  log_predictions: ArrayLike,
  targets: ArrayLike,
  axis: Static[int | tuple[int, ...] | None] = -1,
  where: ArrayLike | None = None,
) -> jax.Array:
  """``sum t (log t - log_predictions)`` over ``axis`` (``jl.kl_divergence``: 0, finite gradient, where t = 0)."""
  terms, _, _ = _kl_terms("kl_divergence", log_predictions, targets, where, log_targets=False)
  return jnp.sum(terms, axis=axis)


@_jit
def kl_divergence_with_log_targets(
  log_predictions: ArrayLike,
  log_targets: ArrayLike,
  axis: Static[int | tuple[int, ...] | None] = -1,
  where: ArrayLike | None = None,
) -> jax.Array:
  """``kl_divergence`` with log-space targets (``jl.kl_divergence(..., log_targets=True)``)."""
  terms, _, _ = _kl_terms("kl_divergence_with_log_targets", log_predictions, log_targets, where, log_targets=True)
  return jnp.sum(terms, axis=axis)


@_jit
def generalized_kl_divergence(
  log_predictions: ArrayLike,
  targets: ArrayLike,
  axis: Static[int | tuple[int, ...] | None] = -1,
  where: ArrayLike | None = None,
) -> jax.Array:
  """KL for unnormalised distributions: ``sum t (log t - log p) + p - t`` over ``axis``."""
  terms, lp, t = _kl_terms("generalized_kl_divergence", log_predictions, targets, where, log_targets=False)
  m = _mask(where, lp.shape)
  return jnp.sum(terms + jnp.where(m, jnp.exp(lp) - t, 0), axis=axis)


def convex_kl_divergence(
  log_predictions: ArrayLike,
  targets: ArrayLike,
  axis: Static[int | tuple[int, ...] | None] = -1,
  where: ArrayLike | None = None,
) -> jax.Array:
  """Deprecated alias of :func:`generalized_kl_divergence` (warns, as optax does)."""
  _deprecated("convex_kl_divergence", "generalized_kl_divergence")
  return generalized_kl_divergence(log_predictions, targets, axis=axis, where=where)


def _ctc_inputs(logits, logit_paddings, labels, label_paddings, blank_id):
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
  log_epsilon: ArrayLike = -1e5,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """CTC loss ``[B]`` and the forward log-probabilities ``[T, B, N + 1]`` (blank) and ``[T, B, N]`` (label).

  From jaxloss's lattice (``jl.ctc``): unreachable states are exactly -inf, so
  ``log_epsilon`` is accepted and ignored. As in optax, the last blank row also
  holds the label that ends there.
  """
  del log_epsilon
  x, y, logit_lengths, label_lengths = _ctc_inputs(logits, logit_paddings, labels, label_paddings, blank_id)
  loss = jl.ctc(x, y, logit_lengths=logit_lengths, label_lengths=label_lengths, blank=blank_id, reduction="none")
  lattice = sequence._lattice(x.astype(_checks.compute_dtype(x)), jnp.clip(y, 0, x.shape[-1] - 1), blank_id)
  _, (blank, label) = sequence._alphas(*lattice, logit_lengths, keep=True)
  last = jnp.concatenate([blank[-1, :, :1], sequence._log_sum_exp(blank[-1, :, 1:], label[-1])], axis=-1)
  return loss, blank.at[-1].set(last), label


@_jit
def ctc_loss(
  logits: ArrayLike,
  logit_paddings: ArrayLike,
  labels: ArrayLike,
  label_paddings: ArrayLike,
  *,
  blank_id: Static[int] = 0,
  log_epsilon: ArrayLike = -1e5,
) -> jax.Array:
  """CTC loss per sequence from paddings: ``jl.ctc(..., reduction="none")``; ``log_epsilon`` is ignored."""
  del log_epsilon
  x, y, logit_lengths, label_lengths = _ctc_inputs(logits, logit_paddings, labels, label_paddings, blank_id)
  return jl.ctc(x, y, logit_lengths=logit_lengths, label_lengths=label_lengths, blank=blank_id, reduction="none")


@_jit
def sigmoid_focal_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  alpha: ArrayLike | None = None,
  gamma: ArrayLike = 2.0,
) -> jax.Array:
  """Sigmoid focal loss elementwise (``jl.sigmoid_focal``); ``alpha=None`` disables the class balance."""
  x = _float("sigmoid_focal_loss", "logits", logits)
  t = jnp.asarray(labels)
  shape = jnp.broadcast_shapes(x.shape, t.shape)
  x, t = jnp.broadcast_to(x, shape), _like(x, t, shape)
  gamma = jnp.asarray(gamma).astype(x.dtype)
  loss = classification._sigmoid_cross_entropy(x, t) * jnp.exp(gamma * classification._log_one_minus_pt(x, t))
  if alpha is None:
    return loss
  alpha = jnp.asarray(alpha).astype(x.dtype)
  return (alpha * t + (1 - alpha) * (1 - t)) * loss


@_jit
def multiclass_sparsemax_loss(scores: ArrayLike, labels: ArrayLike) -> jax.Array:
  """Multiclass sparsemax loss ``<p, s> - s_y + (1 - |p|^2) / 2`` with ``p = sparsemax(s)``; gradient ``p - e_y``."""
  s = _float("multiclass_sparsemax_loss", "scores", scores)
  y = _checks.integer("labels", labels)
  proba = jnp.vectorize(projections.projection_simplex, signature="(n)->(n)")(s)
  s_y = jnp.take_along_axis(s, y[..., None], axis=-1)[..., 0]
  return jnp.sum(proba * s, axis=-1) - s_y + 0.5 * (1 - jnp.sum(proba * proba, axis=-1))


# Self-supervised ---------------------------------------------------------------------------------


@_jit
def ntxent(embeddings: ArrayLike, labels: ArrayLike, temperature: ArrayLike = 0.07) -> jax.Array:
  """NT-Xent averaged over positive pairs (a scalar): ``jl.ntxent`` weighted by each anchor's positives."""
  fn = "ntxent"
  x = _float(fn, "embeddings", embeddings)
  y = _checks.integer("labels", labels)
  if y.shape[0] != x.shape[0]:
    raise ValueError(
      f"Labels and embeddings must have the same leading dimension, found {y.shape[0]} for labels and"
      f" {x.shape[0]} for embeddings."
    )
  loss, count = embedding._ntxent_per_anchor(x, y, jnp.ones(y.shape, bool), jnp.asarray(temperature).astype(x.dtype))
  return _reduce.safe_divide(jnp.sum(loss * count), jnp.sum(count))


@_jit
def triplet_margin_loss(
  anchors: ArrayLike,
  positives: ArrayLike,
  negatives: ArrayLike,
  axis: Static[int] = -1,
  norm_degree: ArrayLike = 2,
  margin: ArrayLike = 1.0,
  eps: ArrayLike = 1e-6,
) -> jax.Array:
  """``max(0, d(a, p) - d(a, n) + margin)``, ``d(x, y) = (sum |x - y|^q + eps)^(1/q)`` over ``axis``.

  Gradient 0 at the hinge (optax: 0.5). Options may be traced.
  """
  fn = "triplet_margin_loss"
  a = _float(fn, "anchors", anchors, positives, negatives)
  p = _like(a, _checks.floating("positives", positives))
  n = _like(a, _checks.floating("negatives", negatives))
  q = jnp.asarray(norm_degree).astype(a.dtype)
  eps = jnp.asarray(eps).astype(a.dtype)

  def distance(x, y):
    return (jnp.sum(_custom.abs(x - y) ** q, axis=axis) + eps) ** (1 / q)

  return jax.nn.relu(distance(a, p) - distance(a, n) + jnp.asarray(margin).astype(a.dtype))


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
  """Listwise softmax loss ``-sum_i y_i log softmax(s)_i`` per list (unnormalised labels, as optax).

  ``where`` masks items; lists with no valid item have loss 0 and leave the
  mean (value and gradient 0, never NaN). ``reduce_fn`` is ``jnp.mean``,
  ``jnp.sum`` (both through ``jaxloss``'s reduction) or any callable taking ``where=``.
  """
  fn = "ranking_softmax_loss"
  x, q, m = _softmax_inputs(fn, logits, labels, -1, where)
  if weights is not None:
    q = q * _like(x, weights)
  loss, _ = _softmax_cross_entropy(x, q, m)
  lists = None if where is None else jnp.any(m, axis=-1)
  if reduce_fn is jnp.mean or reduce_fn is jnp.sum:
    return _reduce.reduce(loss, reduction="mean" if reduce_fn is jnp.mean else "sum", where=lists)
  if reduce_fn is None:
    return loss if lists is None else jnp.where(lists, loss, 0)
  return reduce_fn(loss, where=lists)


# Segmentation ------------------------------------------------------------------------------------


def dice_loss(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  class_weights: ArrayLike | None = None,
  smooth: ArrayLike = 1.0,
  alpha: ArrayLike = 0.5,
  beta: ArrayLike = 0.5,
  apply_softmax: bool = True,
  reduction: str = "mean",
  ignore_background: bool = False,
  axis: ArrayLike | None = None,
) -> jax.Array:
  """Tversky/Dice loss per example and class (``jl.tversky``), reduced over classes by ``reduction``.

  ``predictions`` are ``[B, ..., C]`` logits (softmax, or sigmoid for ``C = 1``)
  or probabilities with ``apply_softmax=False``; the ratio is over ``axis``
  (default: the spatial axes). Options may be traced; a 0/0 ratio is a perfect score.
  """
  fn = _NAME + "dice_loss"
  p, t = jnp.asarray(predictions), jnp.asarray(targets)
  if p.ndim == t.ndim - 1:
    p = p[..., None]
  if t.ndim == p.ndim - 1:
    t = t[..., None]
  _checks.same_shape(("predictions", p), ("targets", t))
  p = _float("dice_loss", "predictions", p)
  t = _like(p, t)
  if not apply_softmax:
    sums = jnp.sum(p, axis=-1)
    if not jnp.allclose(sums, 1.0, rtol=1e-5):
      raise ValueError(
        f"{fn}: with apply_softmax=False, `predictions` must be valid probability distributions that sum to 1 along"
        f" the class axis. Found sum range: [{jnp.min(sums):.6f}, {jnp.max(sums):.6f}]"
      )
  axes = tuple(range(1, p.ndim - 1)) if axis is None else _axes(axis, p.ndim)
  if class_weights is not None:
    class_weights = jnp.asarray(class_weights)
    if class_weights.ndim != 1:
      raise ValueError(f"{fn}: `class_weights` must have rank 1, got shape {class_weights.shape}.")
  if reduction not in ("mean", "sum", "none"):
    raise ValueError(f"Unsupported reduction: {reduction}")
  return _dice(
    p,
    t,
    class_weights,
    smooth,
    alpha,
    beta,
    apply_softmax=apply_softmax,
    reduction=reduction,
    ignore_background=ignore_background,
    axes=axes,
  )


@functools.partial(loss, public_name=_NAME + "dice_loss")
def _dice(
  p,
  t,
  class_weights,
  smooth,
  alpha,
  beta,
  *,
  apply_softmax: Static[bool],
  reduction: Static[str],
  ignore_background: Static[bool],
  axes: Static[tuple[int, ...]],
):
  """:func:`dice_loss` after validation, compiled once per shape (optax's tests call it eagerly on large images)."""
  if apply_softmax:
    p = jax.nn.sigmoid(p) if p.shape[-1] == 1 else jax.nn.softmax(p, axis=-1)
  smooth, alpha, beta = (jnp.asarray(v).astype(p.dtype) for v in (smooth, alpha, beta))
  loss = segmentation._tversky(p, t, axes, alpha, beta, smooth)
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
  smooth: ArrayLike = 1.0,
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
  smooth: ArrayLike = 1.0,
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
  alpha: ArrayLike,
  *,
  axis: Static[int | tuple[int, ...] | None] = -1,
  where: ArrayLike | None = None,
) -> jax.Array:
  """``(1 - alpha) * labels + alpha / C`` with ``C`` the number of (selected) classes along ``axis``."""
  y = _float("smooth_labels", "labels", labels)
  if where is None:
    classes = jnp.asarray(math.prod(y.shape[a] for a in _axes(axis, y.ndim)), y.dtype)
  else:
    classes = jnp.sum(jnp.asarray(where), axis=axis, keepdims=True).astype(y.dtype)
  alpha = jnp.asarray(alpha).astype(y.dtype)
  return (1.0 - alpha) * y + alpha / classes


def make_fenchel_young_loss(max_fun: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
  """The Fenchel-Young loss ``max_fun(scores) - <targets, scores>`` over the last axis, for a convex ``max_fun``.

  Its gradient in ``scores`` is ``grad max_fun(scores) - targets``
  (Blondel, Martins, Niculae, "Learning with Fenchel-Young Losses", JMLR 2020).
  """
  max_last = jnp.vectorize(max_fun, signature="(n)->()")

  def fenchel_young_loss(scores, targets, *args, **kwargs):
    s = jnp.asarray(scores)
    return max_last(s, *args, **kwargs) - jnp.sum(_like(s, targets) * s, axis=-1)

  return fenchel_young_loss
