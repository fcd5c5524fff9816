"""Classification losses: the cross-entropy family, focal losses, hinge and margin losses.

Losses over classes take scores of shape ``[..., C]`` with the class axis last
(``nll`` and ``cross_entropy`` accept any ``axis=``); leading axes are batch and
``reduction="none"`` returns one value per example, shape ``[...]``. Integer
``labels`` are class indices of shape ``[...]`` (for ``multilabel_margin``,
lists of target classes ``[..., C]`` padded with -1). The binary losses
(``binary_cross_entropy``, ``sigmoid_focal``, ``hinge``, ``soft_margin``, ...)
are elementwise: inputs and targets have the same shape and the loss has one
value per element. Inputs are computed in float32 at least (float16 and
bfloat16 are promoted, the result is float32).

Out-of-range labels: an integer label outside ``[0, C)`` that is not
``ignore_index`` is reported by :func:`jaxloss.checked`. Without it, that
example's loss is NaN, so a ``"mean"`` or ``"sum"`` is NaN and the mistake shows,
and its gradient is exactly 0, so the other examples' gradients are unchanged
(torch raises; optax wraps negative labels around and reads NaN above ``C``).
Labels under a False ``where`` or equal to ``ignore_index`` are never read.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero
from jax.typing import ArrayLike

from jaxloss import _checks, _custom, _inputs, _reduce
from jaxloss._api import Numeric, Static, loss

# torch clamps log-probabilities of binary_cross_entropy at -100 and divides its
# gradient by max(p (1 - p), 1e-12) (aten/src/ATen/native/Loss.cpp).
_BCE_LOG_FLOOR = -100.0
_BCE_EPSILON = 1e-12


# Inputs ------------------------------------------------------------------------------------------


def _class_scores(
  arg: str, scores, labels, where, ignore_index=None, axis: int = -1
) -> tuple[jax.Array, _inputs.Labels]:
  """Scores ``[..., C]`` (class axis ``axis`` moved last) in the compute dtype, masked, and their integer labels."""
  x = _inputs.scores(arg, scores, axis)
  labels = _inputs.class_labels(arg, x, labels, where, ignore_index)
  x, _ = _inputs.prepare((arg, x, "floating"), where=labels.mask, axes=-1)
  return x, labels


def _probabilities(logits, labels, axis: int, where):
  """Logits and probability ``labels`` of the same shape, class axis moved last, masked; and the mask."""
  x = _checks.floating("logits", logits)
  labels = _checks.floating("labels", labels)
  if labels.shape != x.shape:
    raise ValueError(
      f"{_checks.name()}: floating `labels` (probabilities) must have the shape of `logits`, got"
      f" logits.shape={x.shape} and labels.shape={labels.shape}."
    )
  x = _inputs.scores("logits", x, axis)
  labels = jnp.moveaxis(labels, axis % x.ndim, -1)
  x, labels, mask = _inputs.prepare(("logits", x, "floating"), ("labels", labels, "floating"), where=where, axes=-1)
  _checks.debug_probabilities(labels=labels)
  return x, labels, mask


# Primitives --------------------------------------------------------------------------------------


def _pick(x: jax.Array, index: jax.Array) -> jax.Array:
  """``x[..., index]`` along the last axis (``index`` already in range)."""
  return jnp.take_along_axis(x, index[..., None], axis=-1, mode="promise_in_bounds")[..., 0]


def _class_weight_of(class_weights: jax.Array, index: jax.Array) -> jax.Array:
  """``class_weights[index]``, sharded like ``index`` (a batch-sharded gather needs its output sharding named)."""
  return class_weights.at[index].get(mode="promise_in_bounds", out_sharding=jax.typeof(index).sharding)


def _weighted_by_class(loss: jax.Array, class_weights: jax.Array | None, labels: _inputs.Labels) -> jax.Array:
  """The per-example loss times its target class's weight (if any), NaN where the label is out of range."""
  if class_weights is not None:
    loss = _class_weight_of(class_weights, labels.index) * loss
  return jnp.where(labels.in_range, loss, jnp.nan)


def _one_hot(index: jax.Array, num_classes: int) -> jax.Array:
  """Boolean ``[..., C]``: True at each example's class."""
  return jax.lax.broadcasted_iota(index.dtype, (*index.shape, num_classes), index.ndim) == index[..., None]


def _neg_log_softmax_sum(x: jax.Array, lse: jax.Array, q: jax.Array) -> jax.Array:
  """``sum_c q_c (lse - x_c)`` over the last axis, with ``0 * inf = 0`` where ``q_c = 0`` and ``x_c = -inf``."""
  nlp = lse[..., None] - x
  nlp = jnp.where((q == 0) & jnp.isinf(nlp), jnp.zeros((), nlp.dtype), nlp)
  return jnp.sum(q * nlp, axis=-1)


def _softmax_parts(x: jax.Array, stored=None):
  """``exp(x - shift)``, its sum over the last axis and ``lse(x)``, shifted as ``jax.nn.logsumexp`` (same edges).

  ``stored`` (None, or the half dtype ``x`` was promoted from, its values exact
  there): the max is taken in it, which XLA reads from the caller's buffer
  instead of the float32 copy (the max is exact in any precision).
  """
  shift = jnp.max(x if stored is None else x.astype(stored), axis=-1).astype(x.dtype)
  shift = jnp.where(jnp.isfinite(shift), shift, jnp.zeros((), x.dtype))
  exps = jnp.exp(x - shift[..., None])
  total = jnp.sum(exps, axis=-1)
  return exps, total, jnp.log(total) + shift


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _softmax_cross_entropy(x: jax.Array, index: jax.Array, stored=None) -> jax.Array:
  """``lse(x) - x[..., index]`` over the last axis (``index`` in range), one ``exp`` per element.

  The tangent ``sum_c (softmax(x)_c - [c = index]) dx_c`` reuses the forward's
  exponentials, so reverse mode forms the softmax from the ``exp(x - max)``
  that the log-sum-exp summed instead of recomputing it, and the one-hot is a
  select fused into the gradient (no scatter). ``stored``: as :func:`_softmax_parts`.
  """
  return _softmax_parts(x, stored)[2] - _pick(x, index)


@_softmax_cross_entropy.defjvp
def _softmax_cross_entropy_jvp(stored, primals, tangents):
  (x, index), (dx, _) = primals, tangents
  exps, total, lse = _softmax_parts(x, stored)
  q = exps * (1 / total)[..., None] - _one_hot(index, x.shape[-1]).astype(x.dtype)
  return lse - _pick(x, index), jnp.sum(q * dx, axis=-1)


def _clamped_log(x: jax.Array) -> jax.Array:
  """``max(log(x), -100)`` as torch's binary_cross_entropy, finite derivative at ``x = 0``."""
  # maximum, not a where: XLA:CPU fuses it into the reduction (a select is hoisted out and materialised).
  return jnp.maximum(_custom.safe_log(x), _BCE_LOG_FLOOR)


@jax.custom_jvp
def _binary_cross_entropy(p: jax.Array, t: jax.Array) -> jax.Array:
  # The value alone is plain log / log1p against the floor: log(0) = -inf clamps to -100, and the
  # elementwise-reduce fusion absorbs it whole (the guarded logs, whose derivatives stay finite at 0 for
  # Hessians, are only in the tangent rule below). log1p(-p) keeps log(1 - p) accurate for tiny p.
  return -(t * jnp.maximum(jnp.log(p), _BCE_LOG_FLOOR) + (1 - t) * jnp.maximum(jnp.log1p(-p), _BCE_LOG_FLOOR))


@_binary_cross_entropy.defjvp
def _binary_cross_entropy_jvp(primals, tangents):
  (p, t), (dp, dt) = primals, tangents
  # torch's backward: the clamp is straight-through and p (1 - p) is floored at 1e-12.
  spread = jnp.maximum(p * (1 - p), _BCE_EPSILON)
  slope_t = _clamped_log(1 - p) - _clamped_log(p)
  return _binary_cross_entropy(p, t), (p - t) / spread * dp + slope_t * dt


def _sigmoid_cross_entropy(x: jax.Array, t: jax.Array, pos_weight: jax.Array | None = None) -> jax.Array:
  """``-(w t log sigmoid(x) + (1 - t) log sigmoid(-x))`` without overflow or cancellation."""
  positive = t * jax.nn.softplus(-x)
  if pos_weight is not None:
    positive = pos_weight * positive
  return positive + (1 - t) * jax.nn.softplus(x)


def _log_one_minus_pt(x: jax.Array, t: jax.Array) -> jax.Array:
  """``log(1 - p_t)`` of sigmoid(x) against targets t: ``1 - p_t = t (1 - p) + (1 - t) p``, in log space.

  Its derivative in ``t`` is wrong at ``t`` in {0, 1} (``log t`` is a constant
  -inf there): :func:`_focal` differentiates the focal term itself.
  """
  return jnp.logaddexp(_custom.safe_log(t) + jax.nn.log_sigmoid(-x), _custom.safe_log(1 - t) + jax.nn.log_sigmoid(x))


def _focal_value(x: jax.Array, t: jax.Array, gamma) -> jax.Array:
  return _sigmoid_cross_entropy(x, t) * jnp.exp(gamma * _log_one_minus_pt(x, t))


@jax.custom_jvp
def _focal(x: jax.Array, t: jax.Array, gamma) -> jax.Array:
  """``(1 - p_t)^gamma BCE(x, t)``, with the derivatives of that formula everywhere.

  ``gamma`` is a Python number (folded into the program) or a traced 0-d
  array. The derivatives in ``x`` and ``gamma`` are autodiff's; the one in
  ``t``, which autodiff gets wrong at binary targets (see
  :func:`_log_one_minus_pt`), is :func:`_focal_target_slope`, computed only
  when ``t`` is differentiated.
  """
  return _focal_value(x, t, gamma)


def _focal_jvp(primals, tangents):
  (x, t, gamma), (dx, dt, dgamma) = primals, tangents
  moving = [(i, d) for i, d in ((0, dx), (2, dgamma)) if not isinstance(d, SymbolicZero)]
  if moving:

    def value(*args):
      full = [x, t, gamma]
      for (i, _), a in zip(moving, args, strict=True):
        full[i] = a
      return _focal_value(*full)

    y, dy = jax.jvp(value, tuple(primals[i] for i, _ in moving), tuple(d for _, d in moving))
  else:
    y, dy = _focal_value(x, t, gamma), jnp.zeros_like(x)
  if not isinstance(dt, SymbolicZero):
    dy = dy + _focal_target_slope(x, t, gamma) * dt
  return y, dy


_focal.defjvp(_focal_jvp, symbolic_zeros=True)


def _log_softplus(z: jax.Array) -> jax.Array:
  """``log(softplus(z))``; below -40 that is ``z`` to float64 precision, and softplus would underflow."""
  far = z < -40
  return jnp.where(far, z, jnp.log(jax.nn.softplus(jnp.where(far, jnp.zeros((), z.dtype), z))))


def _focal_target_slope(x: jax.Array, t: jax.Array, gamma) -> jax.Array:
  """``d/dt (1 - p_t)^gamma BCE = gamma (1 - 2p) (1 - p_t)^(gamma - 1) BCE - x (1 - p_t)^gamma``.

  ``(1 - p_t)^(gamma - 1) BCE`` is formed in log space: near binary targets
  ``1 - p_t`` and BCE vanish together (for ``gamma < 1`` the power alone
  overflows), and their logs stay finite for every finite logit.
  """
  log_one_minus_pt = _log_one_minus_pt(x, t)
  log_bce = jnp.logaddexp(_custom.safe_log(t) + _log_softplus(-x), _custom.safe_log(1 - t) + _log_softplus(x))
  modulated_bce = jnp.exp((gamma - 1) * log_one_minus_pt + log_bce)
  return -gamma * jnp.tanh(x / 2) * modulated_bce - x * jnp.exp(gamma * log_one_minus_pt)


_MAX_INTEGER_GAMMA = 64  # a constant integer gamma up to this takes _focal_integer (an integer power)


def _focal_integer(x: jax.Array, t: jax.Array, gamma: int) -> jax.Array:
  """``(1 - p_t)^gamma BCE(x, t)`` for a constant positive integer ``gamma`` (the usual 1, 2, 3), plain autodiff.

  ``1 - p_t = t sigmoid(-x) + (1 - t) sigmoid(x)`` is formed from both
  sigmoids, each computed without cancellation, and raised to an integer power
  (multiplications): its derivatives of every order are finite on [0, 1], and
  its derivative in ``t`` (``1 - 2p``) is right at binary targets, so neither
  the log-space form nor :func:`_focal`'s custom rule is needed. One ``exp``
  and one ``log1p`` serve the two sigmoids and the two softplus terms of BCE
  (value_and_grad at 1e7 float32: ~0.6x :func:`_focal`, level with the plain
  jnp expression). Each side of ``x == 0`` reads ``|x|`` as the same branch, so
  the derivatives there are the formula's (``softplus'(0) = 1 / 2``).
  """
  positive = x >= 0
  a = jnp.where(positive, x, -x)
  e = jnp.exp(-a)
  sigmoid_a = 1 / (1 + e)
  sigmoid_neg_a = e * sigmoid_a
  softplus_neg_a = jnp.log1p(e)
  softplus_a = a + softplus_neg_a

  def term(t_far, t_near):  # with sigmoid(x) = sigmoid_a for x >= 0: t_far = t there, 1 - t for x < 0
    one_minus_pt = t_far * sigmoid_neg_a + t_near * sigmoid_a
    return one_minus_pt**gamma * (t_far * softplus_neg_a + t_near * softplus_a)

  # One select last: XLA:CPU's reduction fusion then reads the one loss array (selects earlier, whose
  # operands it would materialise, made the forward at 1e7 float32 ~1.2x the jnp expression).
  return jnp.where(positive, term(t, 1 - t), term(1 - t, t))


def _alpha_weighted(loss: jax.Array, t: jax.Array, alpha) -> jax.Array:
  """``alpha_t * loss``, ``alpha_t = alpha t + (1 - alpha) (1 - t)``; a negative alpha disables it."""
  if _inputs.is_array(alpha):
    on = alpha >= 0
    alpha = jnp.where(on, alpha, jnp.zeros((), alpha.dtype))  # the double where: -inf never reaches the product
    return jnp.where(on, alpha * t + (1 - alpha) * (1 - t), 1) * loss
  return (alpha * t + (1 - alpha) * (1 - t)) * loss if alpha >= 0 else loss


def _plus_z_loss(loss: jax.Array, lse: jax.Array | None, z_loss) -> jax.Array:
  """``loss + z_loss * lse**2`` (PaLM's auxiliary z-loss); the loss itself for a constant 0 (``lse`` may be None)."""
  if _inputs.is_constant(z_loss, 0):
    return loss
  assert lse is not None, "the log-sum-exp is needed for a z-loss"
  return loss + z_loss * jnp.square(lse)


def _cross_entropy_terms(x, labels, class_weights, label_smoothing, z_loss=0.0, stored=None):
  """torch's per-example cross-entropy with class indices plus the z-loss, and the class weight of each target.

  ``(1 - eps) w_y (lse - x_y) + eps / C sum_c w_c (lse - x_c) + z_loss lse**2``.
  ``stored``: the half dtype the logits ``x`` arrived in (:func:`_softmax_parts`), or None.
  """
  lse: jax.Array | None
  if _inputs.is_constant(label_smoothing, 0) and _inputs.is_constant(z_loss, 0):
    # The common case: the one-exp primitive, whose backward reuses the forward's exponentials.
    loss = _softmax_cross_entropy(x, labels.index, stored)
    lse = None
  else:
    lse = jax.nn.logsumexp(x, axis=-1)
    loss = lse - _pick(x, labels.index)
  target_weights = None
  if class_weights is not None:
    target_weights = _class_weight_of(class_weights, labels.index)
    loss = target_weights * loss
  if not _inputs.is_constant(label_smoothing, 0):
    num_classes = x.shape[-1]
    q = jnp.ones((num_classes,), x.dtype) if class_weights is None else class_weights
    assert lse is not None  # computed above whenever the smoothing is not the constant 0
    smooth = _neg_log_softmax_sum(x, lse, jnp.broadcast_to(q, x.shape))
    if _inputs.is_array(label_smoothing):
      # A traced 0 gives the constant 0's loss where a -inf logit makes the smoothing term infinite.
      smooth = jnp.where((label_smoothing == 0) & jnp.isinf(smooth), jnp.zeros((), smooth.dtype), smooth)
    loss = (1 - label_smoothing) * loss + (label_smoothing / num_classes) * smooth
  loss = _plus_z_loss(loss, lse, z_loss)
  return jnp.where(labels.in_range, loss, jnp.nan), target_weights


def _smoothed(t: jax.Array, label_smoothing) -> jax.Array:
  if _inputs.is_constant(label_smoothing, 0):
    return t
  return t * (1 - label_smoothing) + label_smoothing / t.shape[-1]


def _is_floating(labels) -> bool:
  return labels is not None and jnp.issubdtype(jnp.result_type(labels), jnp.floating)


def _margin(value, dtype):
  """A hinge's ``margin``: any finite number (an infinite margin makes every loss infinite)."""
  return _inputs.number("margin", value, dtype, expected="a finite number")


# Losses ------------------------------------------------------------------------------------------


def _small_integer(value: Any) -> int | None:
  """A constant option's value as an ``int`` when it is a whole number up to ``_MAX_INTEGER_GAMMA``, else None."""
  if _inputs.is_array(value) or not float(value).is_integer() or value > _MAX_INTEGER_GAMMA:
    return None
  return int(value)


@loss
def nll(
  log_probs: ArrayLike,
  labels: ArrayLike,
  *,
  class_weights: ArrayLike | None = None,
  ignore_index: Static[int | None] = None,
  axis: Static[int] = -1,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Negative log-likelihood of the target class, given log-probabilities.

  .. math::
    \ell_i = -w_{y_i} \log q_{i, y_i}, \qquad
    \text{mean} = \frac{\sum_i v_i m_i \ell_i}{\sum_i v_i m_i w_{y_i}}

  with class weights ``w``, ``weights`` ``v`` and mask ``m`` (``where`` and
  ``labels != ignore_index``).

  Args:
    log_probs: floating ``[..., C]`` (class axis ``axis``), e.g. a log-softmax.
    labels: integer class indices ``[...]`` (the shape of ``log_probs`` without
      ``axis``).
    class_weights: optional ``[C]`` weight of each class; the mean divides by the
      summed class weights of the counted targets, as torch.
    ignore_index: optional label value whose examples count for nothing.
    axis: the class axis of ``log_probs``.
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional per-example weights broadcastable to ``[...]``.
    where: optional per-example boolean mask broadcastable to ``[...]``.

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"`` (class weights included, as
    torch); float32 for half inputs.

  Linear in ``log_probs``: gradient ``-w_y`` at the target, 0 elsewhere, so
  -inf log-probabilities on other classes are harmless. An all-ignored batch
  has mean 0 with a zero gradient (torch gives NaN). Out-of-range labels: see
  the module docstring. Matches ``torch.nn.functional.nll_loss``.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> log_probs = jnp.log(jnp.array([[0.5, 0.5], [0.9, 0.1]]))
    >>> print(jl.nll(log_probs, jnp.array([0, 1]), reduction="none"))
    [0.6931472 2.3025851]
  """
  x, classes = _class_scores("log_probs", log_probs, labels, where, ignore_index, axis)
  class_weights = _inputs.class_weights("class_weights", class_weights, x.shape[-1], x.dtype)
  loss = -_pick(x, classes.index)
  target_weights = None
  if class_weights is not None:
    target_weights = _class_weight_of(class_weights, classes.index)
    loss = target_weights * loss
  loss = jnp.where(classes.in_range, loss, jnp.nan)
  return _reduce.reduce(loss, reduction=reduction, weights=weights, where=classes.mask, count_weights=target_weights)


@loss
def cross_entropy(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  axis: Static[int] = -1,
  label_smoothing: Numeric = 0.0,
  class_weights: ArrayLike | None = None,
  ignore_index: Static[int | None] = None,
  z_loss: Numeric = 0.0,
  softcap: Numeric | None = None,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Softmax cross-entropy with class indices or class probabilities, optional z-loss and soft-capping.

  .. math::
    \ell_i = \sum_c w_c\, q_{ic} \big(\operatorname{lse}(z_i) - z_{ic}\big)
      + \lambda_z \operatorname{lse}(z_i)^2, \qquad
    z_{ic} = \kappa \tanh(x_{ic} / \kappa), \qquad
    q_{ic} = \begin{cases} (1 - \epsilon)\,[c = y_i] + \epsilon / C & \text{integer labels} \\
      (1 - \epsilon)\, t_{ic} + \epsilon / C & \text{probability labels} \end{cases}

  For integer labels the class weight enters as torch does: the target term is
  weighted by ``w_{y_i}``, the smoothing term by each ``w_c``, and the mean
  divides by ``sum_i v_i m_i w_{y_i}``. For probability labels the mean divides
  by the (weighted) number of examples. The z-loss term is not weighted by
  ``class_weights``, leaves the mean's denominator as it is, and masked or
  ignored examples have none. Without ``softcap`` (``kappa``) ``z = x``.

  Args:
    logits: floating ``[..., C, ...]``, classes along ``axis``.
    labels: integer class indices with the shape of ``logits`` without ``axis``,
      or floating probabilities with the shape of ``logits``.
    axis: the class axis (any axis; default the last).
    label_smoothing: ``epsilon`` in ``[0, 1]``: mixes the targets with the
      uniform distribution, as torch's ``label_smoothing``. May be traced (a
      0-d array or tracer); a traced value outside ``[0, 1]`` gives a
      meaningless loss (:func:`jaxloss.checked` reports it).
    class_weights: optional ``[C]`` weight of each class.
    ignore_index: optional integer label whose examples count for nothing
      (integer labels only).
    z_loss: ``lambda_z >= 0``, the weight of PaLM's auxiliary z-loss
      ``lse(z)**2``, which keeps the softmax normaliser near 1 (the
      ``z_loss`` of :func:`jaxloss.linear_cross_entropy`). May be traced; a
      traced negative value rewards a large normaliser
      (:func:`jaxloss.checked` reports it).
    softcap: optional ``kappa > 0``: the logits become
      ``kappa * tanh(logits / kappa)`` before anything else (Gemma 2's logit
      soft-capping), so they lie in ``(-kappa, kappa)`` (a -inf logit becomes
      ``-kappa``); None (default) or inf leaves them as they are. May be
      traced (a traced inf is exactly no capping); a traced ``kappa <= 0``
      gives a meaningless loss (:func:`jaxloss.checked` reports it).
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional per-example weights broadcastable to the shape of the
      logits without ``axis``.
    where: optional per-example boolean mask, broadcastable likewise.

  Returns:
    A scalar, or the shape of ``logits`` without ``axis`` for
    ``reduction="none"`` (class weights included, as torch); float32 for half
    inputs, which are computed in float32.

  Smooth: without the options the gradient is ``softmax(x) sum_c w_c q_c - w q``
  (the z-loss adds ``2 lambda_z lse softmax(z)``, soft-capping multiplies by
  ``1 - tanh(x / kappa)**2``). A -inf logit on a class with no target mass
  contributes exactly 0 (torch gives NaN with probability labels) and a zero
  gradient; a -inf logit on a class with target mass (including any class when
  ``label_smoothing > 0``) makes the loss +inf. An all-ignored batch has mean 0
  with a zero gradient (torch gives NaN). Out-of-range labels: see the module
  docstring. Matches ``torch.nn.functional.cross_entropy`` (and, without
  options, ``optax.losses.softmax_cross_entropy_with_integer_labels``); the
  z-loss is t5x's ``cross_entropy_with_logits(..., z_loss)`` (Chowdhery et al.,
  "PaLM", 2022), the soft-capping Gemma 2's ``final_logit_softcapping``.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> logits = jnp.array([[2.0, 0.0, -jnp.inf], [0.0, 0.0, 0.0]])
    >>> print(jl.cross_entropy(logits, jnp.array([0, 2]), reduction="none"))
    [0.12692809 1.0986123 ]
    >>> print(jl.cross_entropy(logits, jnp.array([0, -100]), ignore_index=-100))
    0.12692809
    >>> print(jl.cross_entropy(logits, jnp.array([0, 2]), z_loss=1e-4, softcap=30.0, reduction="none"))
    [0.12773234 1.098733  ]
  """
  ignore_index = _inputs.ignore_index(ignore_index)
  probabilities = _is_floating(labels)
  if probabilities:
    if ignore_index is not None:
      raise ValueError(f"{_checks.name()}: `ignore_index` applies to integer labels only, got floating labels.")
    x, t, mask = _probabilities(logits, labels, axis, where)
  else:
    x, classes = _class_scores("logits", logits, labels, where, ignore_index, axis)
  label_smoothing = _inputs.label_smoothing(label_smoothing, x.dtype)
  z_loss = _inputs.number("z_loss", z_loss, x.dtype, lambda z: z >= 0, "a non-negative number")
  if softcap is not None:
    softcap = _inputs.number("softcap", softcap, x.dtype, lambda c: c > 0, "None or positive", infinite_ok=True)
  x = _custom.softcapped(x, softcap)
  class_weights = _inputs.class_weights("class_weights", class_weights, x.shape[-1], x.dtype)
  if probabilities:
    q = _smoothed(t, label_smoothing)
    q = q if class_weights is None else q * jnp.broadcast_to(class_weights, q.shape)
    lse = jax.nn.logsumexp(x, axis=-1)
    loss = _plus_z_loss(_neg_log_softmax_sum(x, lse, q), lse, z_loss)
    return _reduce.reduce(loss, reduction=reduction, weights=weights, where=mask)
  # Without softcap the logits are the promoted input (masked ones 0): half values, exact in their dtype.
  stored = _inputs.arrival_dtype(x, logits) if softcap is None else None
  loss, target_weights = _cross_entropy_terms(x, classes, class_weights, label_smoothing, z_loss, stored)
  return _reduce.reduce(loss, reduction=reduction, weights=weights, where=classes.mask, count_weights=target_weights)


@loss
def binary_cross_entropy(
  probs: ArrayLike,
  targets: ArrayLike,
  *,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Binary cross-entropy between probabilities and targets in [0, 1].

  .. math::
    \ell_i = -\big(t_i \max(\log p_i, -100) + (1 - t_i) \max(\log(1 - p_i), -100)\big)

  Args:
    probs: floating array ``[...]`` of probabilities in ``[0, 1]``.
    targets: array of the same shape, in ``[0, 1]``.
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional weights broadcastable to ``[...]`` (the mean divides by
      their sum; torch's ``weight=`` divides by the number of elements).
    where: optional boolean mask broadcastable to ``[...]``.

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``; float32 for half inputs.

  Edges, as torch: the logs are clamped at -100, so ``p = 0`` or ``1`` gives a
  finite value; the gradient with respect to ``probs`` is torch's
  ``(p - t) / max(p (1 - p), 1e-12)`` (straight-through at the clamp: finite and
  pointing the right way at ``p = 0`` and ``1``). The gradient with respect to
  ``targets`` is that of the clamped formula, finite everywhere (torch gives
  +-inf at ``p = 0`` and ``1``). Values outside ``[0, 1]`` are reported by
  :func:`jaxloss.checked`. Matches ``torch.nn.functional.binary_cross_entropy``.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> print(jl.binary_cross_entropy(jnp.array([0.5, 0.0]), jnp.array([1.0, 1.0]), reduction="none"))
    [  0.6931472 100.       ]
  """
  p, t, mask = _inputs.prepare(("probs", probs, "floating"), ("targets", targets, "real"), where=where)
  _checks.debug_probabilities(probs=p, targets=t)
  return _reduce.reduce(_binary_cross_entropy(p, t), reduction=reduction, weights=weights, where=mask)


@loss
def binary_cross_entropy_with_logits(
  logits: ArrayLike,
  targets: ArrayLike,
  *,
  pos_weight: ArrayLike | None = None,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Binary cross-entropy on logits (sigmoid and cross-entropy in one stable step).

  .. math::
    \ell_i = -\big(w^{+}_i\, t_i \log\sigma(x_i) + (1 - t_i) \log\sigma(-x_i)\big)
           = w^{+}_i\, t_i\, \operatorname{softplus}(-x_i) + (1 - t_i) \operatorname{softplus}(x_i)

  Args:
    logits: floating array ``[...]``.
    targets: array of the same shape, in ``[0, 1]``.
    pos_weight: optional weight ``w+`` of the positive term, broadcastable to
      ``[...]`` (typically ``[C]`` for the last axis), as torch's ``pos_weight``.
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``.

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``; float32 for half inputs.

  Smooth; finite value, gradient and Hessian for logits of any magnitude
  (softplus never overflows). Targets outside ``[0, 1]`` are reported by
  :func:`jaxloss.checked`. Matches
  ``torch.nn.functional.binary_cross_entropy_with_logits`` and
  ``optax.losses.sigmoid_binary_cross_entropy``.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> print(jl.binary_cross_entropy_with_logits(jnp.array([0.0, 1e4]), jnp.array([1.0, 0.0]), reduction="none"))
    [6.931472e-01 1.000000e+04]
  """
  x, t, mask = _inputs.prepare(("logits", logits, "floating"), ("targets", targets, "real"), where=where)
  _checks.debug_probabilities(targets=t)
  if pos_weight is not None:
    pos_weight = _checks.real("pos_weight", pos_weight)
    _checks.broadcastable("pos_weight", pos_weight, x.shape, "`logits`")
    pos_weight = jnp.broadcast_to(pos_weight.astype(x.dtype), x.shape)
  loss = _sigmoid_cross_entropy(x, t, pos_weight)
  return _reduce.reduce(loss, reduction=reduction, weights=weights, where=mask)


@loss
def sigmoid_focal(
  logits: ArrayLike,
  targets: ArrayLike,
  *,
  alpha: Numeric = 0.25,
  gamma: Numeric = 2.0,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Sigmoid focal loss: binary cross-entropy scaled down on well-classified elements.

  .. math::
    \ell_i = \alpha_t\, (1 - p_t)^\gamma\, \mathrm{BCE}(x_i, t_i), \quad
    p_t = p\,t + (1 - p)(1 - t), \quad \alpha_t = \alpha t + (1 - \alpha)(1 - t), \quad p = \sigma(x_i)

  Args:
    logits: floating array ``[...]``.
    targets: array of the same shape, in ``[0, 1]`` (binary or soft).
    alpha: weight of the positive class in ``[0, 1]``; a negative value
      (-inf included) disables the weighting (``alpha_t = 1``), as
      torchvision. May be traced (a 0-d array or tracer; a negative one
      disables the weighting too); a traced ``alpha > 1`` gives a meaningless
      loss (:func:`jaxloss.checked` reports it).
    gamma: focusing exponent, ``>= 0`` and finite; 0 gives binary
      cross-entropy. May be traced; a traced negative ``gamma`` weights the
      well-classified elements up (:func:`jaxloss.checked` reports it).
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``.

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``; float32 for half inputs.

  Edges: ``(1 - p_t)^gamma`` is computed as ``exp(gamma log(1 - p_t))`` with
  ``log(1 - p_t)`` in log-sigmoid space, so value, gradient and Hessian are
  finite for every ``gamma >= 0`` (including ``gamma < 1``, whose power has an
  infinite slope at ``p_t = 1``) and logits of any size. The gradient with
  respect to ``targets`` (knowledge distillation differentiates through them)
  is the derivative of the formula everywhere, binary targets included,
  where ``(1 - p_t)^(gamma - 1) BCE`` is formed in log space: finite for every
  finite logit. Matches torchvision's ``sigmoid_focal_loss`` (Lin et al.,
  "Focal Loss for Dense Object Detection", ICCV 2017) and
  ``optax.losses.sigmoid_focal_loss``.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> print(jl.sigmoid_focal(jnp.array([0.0, 3.0]), jnp.array([1.0, 1.0]), reduction="none"))
    [4.3321699e-02 2.7320832e-05]
  """
  x, t, mask = _inputs.prepare(("logits", logits, "floating"), ("targets", targets, "real"), where=where)
  _checks.debug_probabilities(targets=t)
  expected = "in [0, 1], or negative to disable it"
  alpha = _inputs.number("alpha", alpha, x.dtype, lambda a: a <= 1, expected, infinite_ok=True)
  gamma = _inputs.number("gamma", gamma, x.dtype, lambda g: g >= 0, "a non-negative number")
  if _inputs.is_constant(gamma, 0):
    loss = _sigmoid_cross_entropy(x, t)
  elif (power := _small_integer(gamma)) is not None:
    loss = _focal_integer(x, t, power)
  else:
    loss = _focal(x, t, gamma)
  return _reduce.reduce(_alpha_weighted(loss, t, alpha), reduction=reduction, weights=weights, where=mask)


@loss
def softmax_focal(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  gamma: Numeric = 2.0,
  alpha: ArrayLike | None = None,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Multi-class (softmax) focal loss.

  .. math::
    \ell_i = -\alpha_{y_i}\, (1 - p_{i y_i})^\gamma \log p_{i y_i}, \qquad p_i = \operatorname{softmax}(x_i)

  Args:
    logits: floating ``[..., C]``.
    labels: integer class indices ``[...]``.
    gamma: focusing exponent, ``>= 0`` and finite; 0 gives the
      cross-entropy. May be traced (a 0-d array or tracer); a traced negative
      ``gamma`` weights the well-classified examples up
      (:func:`jaxloss.checked` reports it).
    alpha: optional weight: a scalar, or ``[C]`` (one per class, ``alpha_y``
      applies to an example of class ``y``); None means 1. An array input,
      so it may be traced (and differentiated).
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``; the mean divides
      by the number of examples (``alpha`` is part of the loss, as in Lin et al.).
    weights: optional per-example weights broadcastable to ``[...]``.
    where: optional per-example boolean mask broadcastable to ``[...]``.

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``; float32 for half inputs.

  Edges: ``(1 - p_y)^gamma`` is ``exp(gamma (lse_{c != y} x_c - lse x))``,
  computed without forming ``1 - p_y``, so value, gradient and Hessian are
  finite for every ``gamma >= 0`` even when ``p_y`` rounds to 1, and for -inf
  logits on other classes. Out-of-range labels: see the module docstring.
  Reference: Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> logits = jnp.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    >>> print(jl.softmax_focal(logits, jnp.array([0, 1]), reduction="none"))
    [0.01086933 0.4882721 ]
  """
  x, classes = _class_scores("logits", logits, labels, where)
  gamma = _inputs.number("gamma", gamma, x.dtype, lambda g: g >= 0, "a non-negative number")
  lse = jax.nn.logsumexp(x, axis=-1)
  loss = lse - _pick(x, classes.index)
  if not _inputs.is_constant(gamma, 0):
    others = ~_one_hot(classes.index, x.shape[-1])
    log_one_minus_p = _custom.logsumexp(x, others) - lse
    if _inputs.is_array(gamma):
      # p_y == 1 exactly (every other logit -inf): the loss is 0, and gamma * -inf would be NaN at 0 (and
      # in the derivative with respect to gamma).
      certain = log_one_minus_p == -jnp.inf
      focus = jnp.exp(gamma * jnp.where(certain, jnp.zeros((), x.dtype), log_one_minus_p))
      loss = jnp.where(certain, jnp.zeros((), x.dtype), focus) * loss
    else:
      loss = jnp.exp(gamma * log_one_minus_p) * loss
  alpha = _inputs.class_weights("alpha", alpha, x.shape[-1], x.dtype, scalar_ok=True)
  loss = _weighted_by_class(loss, alpha, classes)
  return _reduce.reduce(loss, reduction=reduction, weights=weights, where=classes.mask)


@loss
def hinge(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  margin: Numeric = 1.0,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Binary hinge loss (the soft-margin SVM loss) for labels in {-1, +1}.

  .. math::
    \ell_i = \max(0,\ \text{margin} - y_i s_i)

  Args:
    scores: floating array ``[...]``.
    labels: array of the same shape with entries -1 or +1.
    margin: the margin, a finite number. May be traced (a 0-d array or
      tracer); a traced NaN or inf gives a NaN or infinite loss
      (:func:`jaxloss.checked` reports it).
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``.

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``; float32 for half inputs.

  Subgradient: ``-y`` where ``y s < margin``, and exactly 0 at ``y s = margin``
  (0 lies in ``[-y, 0]``; the ``jax.nn.relu`` convention). Labels other than +-1 are
  reported by :func:`jaxloss.checked`; without it the formula is applied to
  them as they are. Matches ``optax.losses.hinge_loss`` (Cortes and Vapnik,
  "Support-Vector Networks", 1995).

  Example:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> s, y = jnp.array([-1.0, 0.5]), jnp.array([-1.0, 1.0])
    >>> print(jl.hinge(s, y, reduction="none"), jax.grad(jl.hinge)(s, y))
    [0.  0.5] [ 0.  -0.5]
  """
  s, y, mask = _inputs.prepare(("scores", scores, "floating"), ("labels", labels, "real"), where=where)
  _inputs.signs(y, mask)
  margin = _margin(margin, s.dtype)
  # _custom.relu, not jax.nn.relu: the same derivatives, less memory traffic on CPU (see there).
  return _reduce.reduce(_custom.relu(margin - y * s), reduction=reduction, weights=weights, where=mask)


@loss
def squared_hinge(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  margin: Numeric = 1.0,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Squared hinge loss (L2-SVM) for labels in {-1, +1}.

  .. math::
    \ell_i = \max(0,\ \text{margin} - y_i s_i)^2

  Args:
    scores: floating array ``[...]``.
    labels: array of the same shape with entries -1 or +1.
    margin: the margin, a finite number. May be traced (a 0-d array or
      tracer); a traced NaN or inf gives a NaN or infinite loss
      (:func:`jaxloss.checked` reports it).
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``.

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``; float32 for half inputs.

  Continuously differentiable: the gradient ``-2 y max(0, margin - y s)`` is 0
  at ``y s = margin``; the second derivative jumps there (2 to 0) and is taken
  as 0 at the point. Labels other than +-1 are reported by
  :func:`jaxloss.checked`. Reference: scikit-learn's ``squared_hinge`` loss
  (``LinearSVC``).

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> print(jl.squared_hinge(jnp.array([1.0, -0.5]), jnp.array([1.0, 1.0]), reduction="none"))
    [0.   2.25]
  """
  s, y, mask = _inputs.prepare(("scores", scores, "floating"), ("labels", labels, "real"), where=where)
  _inputs.signs(y, mask)
  margin = _margin(margin, s.dtype)
  return _reduce.reduce(jnp.square(jax.nn.relu(margin - y * s)), reduction=reduction, weights=weights, where=mask)


@loss
def multiclass_hinge(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Crammer-Singer multi-class hinge loss.

  .. math::
    \ell_i = \max\big(0,\ 1 + \max_{j \ne y_i} s_{ij} - s_{i y_i}\big)

  Args:
    scores: floating ``[..., C]``.
    labels: integer class indices ``[...]``.
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional per-example weights broadcastable to ``[...]``.
    where: optional per-example boolean mask broadcastable to ``[...]``.

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``; float32 for half inputs.

  Minimum-norm subgradient: exactly 0 at the loss kink, where the true class's
  score ties ``1 + max_{j != y} s_j`` (0 is in the subdifferential); otherwise,
  with the loss positive, ``mean_{j in T} e_j - e_y`` over the set ``T`` of tied
  maximisers ``j != y``, the shortest element of the subdifferential.
  ``optax.losses.multiclass_hinge_loss`` has the same values but splits the tie
  at the kink between the true class and the others (a non-zero gradient where
  the loss is minimal). Out-of-range labels: see the module docstring.
  Reference: Crammer and Singer, "On the Algorithmic Implementation of
  Multiclass Kernel-based Vector Machines", JMLR 2001.

  Example:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> s, y = jnp.array([[0.0, 0.5, 0.5]]), jnp.array([0])
    >>> print(jl.multiclass_hinge(s, y), jax.grad(jl.multiclass_hinge)(s, y))
    1.5 [[-1.   0.5  0.5]]
  """
  s, classes = _class_scores("scores", scores, labels, where)
  target = _one_hot(classes.index, s.shape[-1])
  runner_up = _custom.max(jnp.where(target, -jnp.inf, s))
  loss = _weighted_by_class(jax.nn.relu(1 + runner_up - _pick(s, classes.index)), None, classes)
  return _reduce.reduce(loss, reduction=reduction, weights=weights, where=classes.mask)


@loss
def multi_margin(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  p: Static[int] = 1,
  margin: Numeric = 1.0,
  class_weights: ArrayLike | None = None,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Weston-Watkins multi-class margin loss, averaged over classes.

  .. math::
    \ell_i = \frac{1}{C} \sum_{j \ne y_i} w_{y_i} \max\big(0,\ \text{margin} - s_{i y_i} + s_{ij}\big)^p

  Args:
    scores: floating ``[..., C]``.
    labels: integer class indices ``[...]``.
    p: 1 or 2.
    margin: the margin, a finite number. May be traced (a 0-d array or
      tracer); a traced NaN or inf gives a NaN or infinite loss
      (:func:`jaxloss.checked` reports it).
    class_weights: optional ``[C]`` weight of each class, applied by the target
      class; the mean divides by the number of examples, as torch.
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional per-example weights broadcastable to ``[...]``.
    where: optional per-example boolean mask broadcastable to ``[...]``.

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``; float32 for half inputs.

  Subgradient: each term has derivative exactly 0 at its kink (``jax.nn.relu``
  convention), as torch's. Out-of-range labels: see the module docstring.
  Matches ``torch.nn.functional.multi_margin_loss`` (Weston and Watkins,
  "Support Vector Machines for Multi-Class Pattern Recognition", 1999).

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> print(jl.multi_margin(jnp.array([[1.0, 0.5, -1.0]]), jnp.array([0])))
    0.16666667
  """
  _checks.option("p", p, p in (1, 2) and not isinstance(p, bool), "1 or 2")
  s, classes = _class_scores("scores", scores, labels, where)
  margin = _margin(margin, s.dtype)
  num_classes = s.shape[-1]
  terms = jax.nn.relu(margin - _pick(s, classes.index)[..., None] + s)
  terms = jnp.where(_one_hot(classes.index, num_classes), 0, terms if p == 1 else jnp.square(terms))
  loss = jnp.sum(terms, axis=-1) / num_classes
  class_weights = _inputs.class_weights("class_weights", class_weights, num_classes, s.dtype)
  loss = _weighted_by_class(loss, class_weights, classes)
  return _reduce.reduce(loss, reduction=reduction, weights=weights, where=classes.mask)


@loss
def multilabel_margin(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Multi-label hinge loss: each target class should outscore each other class by a margin of 1.

  .. math::
    \ell_i = \frac{1}{C} \sum_{j \in Y_i} \sum_{k \notin Y_i} \max\big(0,\ 1 - s_{ij} + s_{ik}\big)

  where the targets ``Y_i`` of example ``i`` are the entries of ``labels[i]``
  before its first -1 (a class listed twice counts twice, as in torch).

  Args:
    scores: floating ``[..., C]``.
    labels: integer ``[..., C]``, the shape of ``scores``: each example's
      target classes, then -1 as padding (``[3, 0, -1, 1]`` means classes 3
      and 0); entries after the first -1 are not targets.
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional per-example weights broadcastable to ``[...]``.
    where: optional per-example boolean mask broadcastable to ``[...]``.

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``; float32 for half inputs.

  Subgradient: each hinge term has derivative exactly 0 at its kink
  ``s_j - s_k = 1`` (the minimum-norm element of its subdifferential
  ``[0, 1] (e_k - e_j)``), as torch's. An example without targets, or whose
  targets are all the classes, has loss 0 and a zero gradient. A label outside
  ``[-1, C)`` anywhere in an example's row (where torch raises) makes that
  example's loss NaN with a zero gradient, and :func:`jaxloss.checked`
  reports it.

  Matches:
    ``torch.nn.functional.multilabel_margin_loss``, values and gradients, for
    every reduction (the mean is over examples).

  References:
    Elisseeff and Weston, "A Kernel Method for Multi-Labelled Classification",
    NeurIPS 2001 (the ranking hinge over target / non-target pairs).

  Example:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> print(jl.multilabel_margin(jnp.array([[0.1, 0.2, 0.4, 0.8]]), jnp.array([[3, 0, -1, 1]])))
    0.85
    >>> s, y = jnp.array([[1.0, 0.0, 0.5]]), jnp.array([[0, -1, 2]])  # s_0 - s_1 = 1: at the kink
    >>> print(jax.grad(jl.multilabel_margin)(s, y))
    [[-0.33333334  0.          0.33333334]]
  """
  s = _inputs.scores("scores", scores)
  labels = _checks.integer("labels", labels)
  if labels.shape != s.shape:
    raise ValueError(
      f"{_checks.name()}: integer `labels` (target classes padded with -1) must have the shape of `scores`, got"
      f" scores.shape={s.shape} and labels.shape={labels.shape}."
    )
  s, mask = _inputs.prepare(("scores", s, "floating"), where=where, axes=-1)
  num_classes = s.shape[-1]
  valid = (labels >= -1) & (labels < num_classes)
  ok = lambda: valid if mask is None else valid | ~mask[..., None]
  _checks.debug_values("labels", labels, ok, f"in [-1, {num_classes}) (-1 ends the targets)")
  listed = jnp.cumsum(labels == -1, axis=-1, dtype=jnp.int32) == 0  # before the first -1
  classes = jax.lax.broadcasted_iota(labels.dtype, (*labels.shape, num_classes), labels.ndim)
  count = jnp.sum(listed[..., None] & (labels[..., None] == classes), axis=-2, dtype=s.dtype)  # per class
  target = count > 0
  # pairs[..., j, k] = max(0, 1 - s_j + s_k) for a target j and a non-target k.
  pairs = _custom.relu(1 - s[..., :, None] + s[..., None, :])
  pairs = jnp.where(target[..., :, None] & ~target[..., None, :], pairs, jnp.zeros((), s.dtype))
  loss = jnp.sum(count * jnp.sum(pairs, axis=-1), axis=-1) / num_classes
  loss = jnp.where(jnp.all(valid, axis=-1), loss, jnp.nan)
  return _reduce.reduce(loss, reduction=reduction, weights=weights, where=mask)


@jax.custom_jvp
def _hinge_embedding(x: jax.Array, y: jax.Array, margin: jax.Array) -> jax.Array:
  """``[y != 1] max(0, margin - x) + [y != -1] x``, the indicators select-free for the forward pass.

  ``ceil(min(|y -+ 1|, 1))`` is exactly ``[y != +-1]`` for finite ``y``: XLA:CPU fuses it
  into the reduction, where compare + select is hoisted out and materialised (forward at 1e7
  float32: 0.7x the jnp expression instead of 1.5-2.4x). The rule below is select-free too
  (``sign(|y -+ 1|)`` is ``[y != +-1]``, ``relu(sign(margin - x))`` is ``[x < margin]``, 0 at the
  kink) and shares no subexpression with the value: a broadcast both used was materialised for
  the reduction, one array per constant (value_and_grad at 1e7 float32: temp 76 -> 38 MB, the
  one left is the margin's broadcast; ~1.4x -> ~1.25x the jnp expression).
  """
  return _hinge_embedding_value(x, y, margin, 1.0)


def _hinge_embedding_value(x: jax.Array, y: jax.Array, margin: jax.Array, one) -> jax.Array:
  """:func:`_hinge_embedding`'s value with its constants built from ``one`` (1, or a barrier'd 1 in the rule)."""
  not_similar = jnp.ceil(jnp.minimum(jnp.abs(y - one), one))
  not_dissimilar = jnp.ceil(jnp.minimum(jnp.abs(y + one), one))
  return not_similar * jnp.maximum(margin - x, one - one) + not_dissimilar * x


@_hinge_embedding.defjvp
def _hinge_embedding_jvp(primals, tangents):
  (x, y, margin), (dx, _, dmargin) = primals, tangents
  one = jax.lax.optimization_barrier(jnp.ones((), x.dtype))  # the value's constants, apart from the tangent's
  value = _hinge_embedding_value(x, y, margin, one)
  short = jnp.sign(jnp.abs(y - 1)) * jax.nn.relu(jnp.sign(margin - x))  # [y != 1][x < margin]: 0 at the kink
  return value, (jnp.sign(jnp.abs(y + 1)) - short) * dx + short * dmargin


@loss
def hinge_embedding(
  inputs: ArrayLike,
  labels: ArrayLike,
  *,
  margin: Numeric = 1.0,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Hinge embedding loss: pull distances of similar pairs down, push dissimilar ones past the margin.

  .. math::
    \ell_i = \begin{cases} x_i & y_i = 1 \\ \max(0,\ \text{margin} - x_i) & y_i = -1 \end{cases}

  Args:
    inputs: floating array ``[...]``, typically distances.
    labels: array of the same shape with entries -1 or +1.
    margin: the margin, a finite number. May be traced (a 0-d array or
      tracer); a traced NaN or inf gives a NaN or infinite loss
      (:func:`jaxloss.checked` reports it).
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``.

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``; float32 for half inputs.

  Subgradient: exactly 0 at the kink ``x = margin`` for ``y = -1`` (the
  minimum-norm element of ``[-1, 0]``); torch's ``clamp_min`` gives -1 there, a
  gradient that pushes an input the loss no longer penalises. Values match
  ``torch.nn.functional.hinge_embedding_loss``, including its treatment of a
  label other than +-1 (both terms apply), which :func:`jaxloss.checked`
  reports.

  Example:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> x, y = jnp.array([0.3, 1.0]), jnp.array([1.0, -1.0])
    >>> print(jl.hinge_embedding(x, y, reduction="none"), jax.grad(jl.hinge_embedding)(x, y))
    [0.3 0. ] [0.5 0. ]
  """
  x, y, mask = _inputs.prepare(("inputs", inputs, "floating"), ("labels", labels, "real"), where=where)
  _inputs.signs(y, mask)
  margin = _margin(margin, x.dtype)
  loss = _hinge_embedding(x, y, margin)
  return _reduce.reduce(loss, reduction=reduction, weights=weights, where=mask)


@loss
def soft_margin(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Soft-margin (logistic) loss for labels in {-1, +1}.

  .. math::
    \ell_i = \log(1 + e^{-y_i s_i})

  Args:
    scores: floating array ``[...]``.
    labels: array of the same shape with entries -1 or +1.
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``.

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``; float32 for half inputs.

  Smooth, computed as ``softplus(-y s)`` (no overflow for large scores).
  Labels other than +-1 are reported by :func:`jaxloss.checked`. Matches
  ``torch.nn.functional.soft_margin_loss``.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> print(jl.soft_margin(jnp.array([0.0, 100.0]), jnp.array([1.0, -1.0]), reduction="none"))
    [  0.6931472 100.       ]
  """
  s, y, mask = _inputs.prepare(("scores", scores, "floating"), ("labels", labels, "real"), where=where)
  _inputs.signs(y, mask)
  return _reduce.reduce(jax.nn.softplus(-y * s), reduction=reduction, weights=weights, where=mask)


@loss
def multilabel_soft_margin(
  logits: ArrayLike,
  targets: ArrayLike,
  *,
  class_weights: ArrayLike | None = None,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Multi-label one-versus-all logistic loss, averaged over classes.

  .. math::
    \ell_i = -\frac{1}{C} \sum_c w_c \big(t_{ic} \log\sigma(x_{ic}) + (1 - t_{ic}) \log\sigma(-x_{ic})\big)

  Args:
    logits: floating ``[..., C]``.
    targets: array of the same shape, in ``[0, 1]`` (usually 0 or 1).
    class_weights: optional ``[C]`` weight of each class.
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional per-example weights broadcastable to ``[...]``.
    where: optional per-example boolean mask broadcastable to ``[...]``.

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``; float32 for half inputs.

  Smooth; stable for logits of any size. Targets outside ``[0, 1]`` are
  reported by :func:`jaxloss.checked`. Matches
  ``torch.nn.functional.multilabel_soft_margin_loss``.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> print(jl.multilabel_soft_margin(jnp.zeros((1, 2)), jnp.array([[1.0, 0.0]])))
    0.6931472
  """
  x = _inputs.scores("logits", logits)
  x, t, mask = _inputs.prepare(("logits", x, "floating"), ("targets", targets, "real"), where=where, axes=-1)
  _checks.debug_probabilities(targets=t)
  terms = _sigmoid_cross_entropy(x, t)
  class_weights = _inputs.class_weights("class_weights", class_weights, x.shape[-1], x.dtype)
  if class_weights is not None:
    terms = jnp.broadcast_to(class_weights, terms.shape) * terms
  loss = jnp.mean(terms, axis=-1)
  return _reduce.reduce(loss, reduction=reduction, weights=weights, where=mask)


@loss
def poly_cross_entropy(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  epsilon: Numeric = 1.0,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Poly-1 loss: cross-entropy plus ``epsilon`` times the first polynomial term ``1 - p_t``.

  .. math::
    \ell_i = \mathrm{CE}(x_i, t_i) + \epsilon \sum_c t_{ic} (1 - p_{ic}), \qquad p_i = \operatorname{softmax}(x_i)

  (for integer labels ``t`` is one-hot, so the extra term is ``1 - p_{i y_i}``).

  Args:
    logits: floating ``[..., C]``.
    labels: integer class indices ``[...]``, or floating probabilities
      ``[..., C]``.
    epsilon: the coefficient of ``1 - p_t``, a finite number (the paper uses
      1 or 2; -1 for detection). May be traced (a 0-d array or tracer); a
      traced NaN or inf gives a NaN or infinite loss (:func:`jaxloss.checked`
      reports it).
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional per-example weights broadcastable to ``[...]``.
    where: optional per-example boolean mask broadcastable to ``[...]``.

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``; float32 for half inputs.

  Smooth; ``1 - p`` is computed as ``-expm1(x - lse)`` (no cancellation when
  ``p`` is small). -inf logits behave as in :func:`cross_entropy`. Matches
  ``optax.losses.poly_loss_cross_entropy``. Reference: Leng et al., "PolyLoss: A
  Polynomial Expansion Perspective of Classification Loss Functions", ICLR 2022.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> print(jl.poly_cross_entropy(jnp.zeros((1, 2)), jnp.array([0])))
    1.1931472
  """
  if _is_floating(labels):
    x, t, mask = _probabilities(logits, labels, -1, where)
    epsilon = _inputs.number("epsilon", epsilon, x.dtype, expected="a finite number")
    lse = jax.nn.logsumexp(x, axis=-1)
    one_minus_p = -jnp.expm1(x - lse[..., None])
    loss = _neg_log_softmax_sum(x, lse, t) + epsilon * jnp.sum(t * one_minus_p, axis=-1)
    return _reduce.reduce(loss, reduction=reduction, weights=weights, where=mask)
  x, classes = _class_scores("logits", logits, labels, where)
  epsilon = _inputs.number("epsilon", epsilon, x.dtype, expected="a finite number")
  loss, _ = _cross_entropy_terms(x, classes, None, 0.0)
  loss = loss - epsilon * jnp.expm1(-loss)
  return _reduce.reduce(loss, reduction=reduction, weights=weights, where=classes.mask)
