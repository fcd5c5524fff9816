"""Calibration and entropy losses: the Brier score, entropy, the confidence penalty, soft-binned ECE and MMCE.

Class scores are ``[..., C]`` with the class axis last and integer labels are
``[...]`` (:func:`brier` also has a binary form). :func:`brier`,
:func:`entropy` and :func:`confidence_penalty` are per example: ``weights`` and
``where`` broadcast to ``[...]``. :func:`soft_binned_ece` and :func:`mmce` are
calibration errors of a *set* of predictions: ``logits`` are ``[..., N, C]``,
``labels`` ``[..., N]``, and the loss is one value per set, ``[...]``, to which
``weights`` broadcast; ``where`` masks examples (``[..., N]``) and a masked
example leaves its set. Sets with no valid example have loss 0 and are left
out of the mean. Inputs are computed in float32 at least (float16 and bfloat16
are promoted; float64 stays float64 when x64 is enabled).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _custom, _inputs, _reduce
from jaxloss._api import Numeric, Static, loss


def _classes(logits, labels, where, arg: str = "logits") -> tuple[jax.Array, _inputs.Labels]:
  """Promoted class scores ``[..., C]`` with masked rows zeroed, and the checked integer labels."""
  x = _inputs.scores(arg, logits)
  target = _inputs.class_labels(arg, x, labels, where)
  x = _inputs.zero_masked(target.mask, x.astype(_checks.compute_dtype(x)), axis=-1)
  _checks.debug_no_nan(**{arg: x})
  return x, target


def _log_softmax(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``log softmax(x)`` and the classes with ``x = -inf`` (probability 0), whose log-probability is replaced by 0."""
  absent = x == -jnp.inf
  return jnp.where(absent, 0, jax.nn.log_softmax(x, axis=-1)), absent


def _log_probs(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``log softmax(x)`` over the last axis, ``-inf`` floored to the lowest finite number, and ``logsumexp(x)``.

  A class of probability 0 (a ``-inf`` logit) gets a finite log-probability whose
  ``exp`` is still 0, so ``p log p`` is 0 there (not NaN) with a zero gradient.
  ``maximum`` rather than a ``where``: XLA:CPU fuses it into the reductions,
  where a select is hoisted out and materialised (the entropy's forward at
  4096x32768 float32 wrote 512 MB of temporaries and took 2.2x the jnp
  expression). The shift ``max(x)`` is constant to autodiff: the values do not
  depend on it.
  """
  lowest = jnp.finfo(x.dtype).min
  shift = jax.lax.stop_gradient(jnp.max(x, axis=-1, keepdims=True))
  log_z = jnp.log(jnp.sum(jnp.exp(jnp.maximum(x - shift, lowest)), axis=-1, keepdims=True))
  # The barrier ends the normaliser's fusion here: fused with the pass that uses it, XLA:CPU's single
  # elementwise-reduce fusion ran 1.3x slower than the jnp expression (confidence_penalty forward at 4096x32768;
  # 0.7x with the barrier). The shifted logits are formed again from the barrier's shift, not reused from the
  # normaliser, so the second pass reads x alone.
  shift, log_z = jax.lax.optimization_barrier((shift, log_z))
  return jnp.maximum(x - shift, lowest) - log_z, shift + log_z


def _entropy(log_p: jax.Array) -> jax.Array:
  """``-sum p log p`` over the last axis of floored log-probabilities (:func:`_log_probs`): ``0 log 0 = 0``."""
  return -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)


@jax.custom_jvp
def _entropy_and_log_z(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The entropy ``H`` of ``softmax(x)`` and ``logsumexp(x)`` over the last axis, each ``[...]``.

  Differentiated by the closed forms ``dH = -sum_c p_c (log p_c + H) dx_c`` and
  ``d logsumexp = sum_c p_c dx_c`` (one pass over the class axis each, where
  autodiff of the floored log-softmax adds the floor's select and a second
  softmax: 1.33x the jnp expression's ``value_and_grad`` at 4096x32768).
  """
  log_p, log_z = _log_probs(x)
  return _entropy(log_p), log_z[..., 0]


@_entropy_and_log_z.defjvp
def _entropy_and_log_z_jvp(primals, tangents):
  (x,), (dx,) = primals, tangents
  log_p, log_z = _log_probs(x)
  h = _entropy(log_p)
  p = jnp.exp(log_p)
  return (h, log_z[..., 0]), (-jnp.sum(p * (log_p + h[..., None]) * dx, axis=-1), jnp.sum(p * dx, axis=-1))


def _sets(logits, labels, where) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Confidence (top-class probability), correctness (0/1, NaN for an out-of-range label) and validity, ``[..., N]``."""
  x, target = _classes(logits, labels, where)
  if x.ndim < 2:
    raise ValueError(f"{_checks.name()}: `logits` must have shape [..., N, C] (a set of N examples), got {x.shape}.")
  log_p, _ = _log_softmax(x)
  confidence = jnp.exp(_custom.max(log_p))  # ties share the derivative (min-norm), as the ECE's top class is one value
  correct = (jnp.argmax(x, axis=-1) == target.index).astype(x.dtype)
  correct = jnp.where(target.in_range, correct, jnp.nan)
  valid = jnp.ones(x.shape[:-1], bool) if target.mask is None else target.mask
  return confidence, jnp.where(valid, correct, 0), valid


@loss
def brier(
  logits_or_probs: ArrayLike,
  labels: ArrayLike,
  *,
  from_logits: Static[bool] = True,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Brier score: squared distance between the predicted distribution and the one-hot label.

  .. math::
    \ell = \sum_c (p_c - [y = c])^2, \qquad p = \mathrm{softmax}(z) \text{ (or the given probabilities)}

  Binary form: when ``labels`` have the shape of ``logits_or_probs``, each entry
  is one binary event, ``p = sigmoid(z)`` and ``\ell = (p - t)^2`` (half the
  two-class sum; scikit-learn's ``brier_score_loss``).

  Args:
    logits_or_probs: floating ``[..., C]`` class logits (or probabilities if
      not ``from_logits``); for the binary form, any shape.
    labels: integer class indices ``[...]``; or, for the binary form, targets
      in ``[0, 1]`` of the shape of ``logits_or_probs`` (any real dtype).
    from_logits: ``logits_or_probs`` are logits (softmax / sigmoid applied
      here) rather than probabilities.
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` over examples.
    weights: optional per-example weights broadcastable to ``[...]`` (the
      shape of the inputs in the binary form).
    where: optional boolean mask of examples, broadcastable likewise.

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``, in ``[0, 2]`` (``[0, 1]``
    binary).

  Edges: smooth; finite with a finite gradient at ``-inf`` logits (probability
  0). An out-of-range label gives NaN (reported by :func:`jaxloss.checked`).
  Metric: the Brier score is itself a proper scoring rule of calibration and
  accuracy. Reference: Brier, "Verification of forecasts expressed in terms of
  probability", Monthly Weather Review 1950.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> print(jl.brier(jnp.array([[0.0, 0.0]]), jnp.array([0])))
    0.5
  """
  x = _checks.floating("logits_or_probs", logits_or_probs)
  y = _checks.real("labels", labels)
  if y.shape == x.shape:  # binary form: one event per entry
    p, t, mask = _inputs.prepare(("logits_or_probs", x, "floating"), ("labels", y, "real"), where=where)
    p = jax.nn.sigmoid(p) if from_logits else p
    return _reduce.reduce(jnp.square(p - t), reduction=reduction, weights=weights, where=mask)
  x, target = _classes(x, labels, where, "logits_or_probs")
  p = jax.nn.softmax(x, axis=-1) if from_logits else x
  one_hot = jax.nn.one_hot(target.index, x.shape[-1], dtype=x.dtype)
  per_example = jnp.where(target.in_range, jnp.sum(jnp.square(p - one_hot), axis=-1), jnp.nan)
  return _reduce.reduce(per_example, reduction=reduction, weights=weights, where=target.mask)


@loss
def entropy(
  logits: ArrayLike,
  *,
  axis: Static[int] = -1,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Shannon entropy of ``softmax(logits)``, the model's uncertainty, per example (natural log).

  .. math::
    H = -\sum_c p_c \log p_c, \qquad p = \mathrm{softmax}(z), \quad 0 \log 0 = 0

  Args:
    logits: floating ``[..., C, ...]`` class logits.
    axis: the class axis (default the last).
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` over examples.
    weights: optional per-example weights broadcastable to the shape of
      ``logits`` without ``axis``.
    where: optional boolean mask of examples, broadcastable likewise.

  Returns:
    A scalar, or the shape of ``logits`` without ``axis`` for
    ``reduction="none"``, in ``[0, log C]``.

  Edges: smooth; a ``-inf`` logit is a class of probability 0, contributing 0
  with a zero gradient (``jnp`` gives NaN). Minimise it for confident
  predictions (entropy minimisation), subtract it to penalise overconfidence
  (:func:`confidence_penalty`). Reference: Shannon, "A Mathematical Theory of
  Communication", 1948.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> print(jl.entropy(jnp.array([0.0, 0.0, -jnp.inf])))
    0.6931472
  """
  x = _inputs.scores("logits", logits, axis)
  mask = _inputs.mask(where, x.shape[:-1])
  x = _inputs.zero_masked(mask, x.astype(_checks.compute_dtype(x)), axis=-1)
  _checks.debug_no_nan(logits=x)
  return _reduce.reduce(_entropy_and_log_z(x)[0], reduction=reduction, weights=weights, where=mask)


@loss
def confidence_penalty(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  beta: Numeric = 0.1,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Cross-entropy minus ``beta`` times the entropy of the prediction: a penalty on overconfident outputs.

  .. math::
    \ell = -\log p_y - \beta H(p), \qquad p = \mathrm{softmax}(z), \quad H(p) = -\sum_c p_c \log p_c

  Args:
    logits: floating ``[..., C]`` class logits.
    labels: integer class indices ``[...]``.
    beta: the weight of the entropy bonus, ``>= 0`` and finite (0 is plain
      cross-entropy). May be traced (a 0-d array or tracer, differentiable); a
      traced negative or non-finite beta gives a meaningless value
      (:func:`jaxloss.checked` reports it).
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` over examples.
    weights: optional per-example weights broadcastable to ``[...]``.
    where: optional boolean mask of examples, broadcastable to ``[...]``.

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``.

  Edges: smooth; finite at ``-inf`` logits of non-target classes (``0 log 0 =
  0``). An out-of-range label gives NaN. Metric: trains for calibration
  (lower ECE) at the accuracy of cross-entropy. Reference: Pereyra et al.,
  "Regularizing Neural Networks by Penalizing Confident Output
  Distributions", ICLR 2017 workshop.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> print(jl.confidence_penalty(jnp.array([[0.0, 0.0]]), jnp.array([0]), beta=1.0))
    0.0
  """
  x, target = _classes(logits, labels, where)
  beta = _inputs.number("beta", beta, x.dtype, lambda b: b >= 0, "a non-negative number")
  h, log_z = _entropy_and_log_z(x)
  # -log p_y = logsumexp(x) - x_y from the logit itself: +inf (not a floored finite number) for a -inf target.
  nll = log_z - jnp.take_along_axis(x, target.index[..., None], axis=-1)[..., 0]
  per_example = jnp.where(target.in_range, nll - beta * h, jnp.nan)
  return _reduce.reduce(per_example, reduction=reduction, weights=weights, where=target.mask)


@loss
def soft_binned_ece(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  bins: Static[int] = 15,
  temperature: Numeric = 0.01,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Soft-binned expected calibration error: the ECE with soft, differentiable bin membership.

  .. math::
    \ell = \frac{1}{N} \sum_{b=1}^{M} \Big| \sum_i u_b(c_i)\,(a_i - c_i) \Big|, \quad
    u_b(c) = \mathrm{softmax}_b\Big(-\frac{(c - \xi_b)^2}{T}\Big), \quad \xi_b = \frac{b - 1/2}{M}

  over the ``N`` valid examples of a set, with ``c_i`` the top-class probability
  (confidence), ``a_i = [\arg\max_c z_{ic} = y_i]`` (accuracy), ``M`` = ``bins``
  and ``T`` = ``temperature``. As ``T -> 0`` the membership becomes the
  equal-width bin containing ``c`` and the loss the exact ECE.

  Args:
    logits: floating ``[..., N, C]``, class logits of a set of ``N`` examples.
    labels: integer class indices ``[..., N]``.
    bins: the number of equal-width confidence bins ``M >= 1`` on ``[0, 1]``.
    temperature: ``T > 0`` and finite, the softness of bin membership (in
      squared-confidence units). May be traced (a 0-d array or tracer,
      differentiable); a traced non-positive or non-finite temperature gives a
      meaningless value (:func:`jaxloss.checked` reports it).
    reduction: ``"mean"`` (default, over sets with a valid example), ``"sum"``
      or ``"none"``.
    weights: optional per-set weights broadcastable to ``[...]``.
    where: optional boolean example mask broadcastable to ``[..., N]``.

  Returns:
    A scalar, or ``[...]`` (one value per set) for ``reduction="none"``, in
    ``[0, 1]``.

  Edges: the accuracy is a constant (ties of the top class count the first);
  the gradient flows through the confidences, with the minimum-norm
  subgradient 0 where a bin's gap is exactly 0 and averaged over tied top
  classes. Metric: expected calibration error (equal-width bins, L1), the
  ``p = 1`` SB-ECE. Reference: Karandikar et al., "Soft Calibration Objectives
  for Neural Networks", NeurIPS 2021.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> logits = jnp.array([[3.0, 0.0], [0.0, 3.0]])
    >>> print(jl.soft_binned_ece(logits, jnp.array([0, 0]), temperature=1e-4))
    0.45257413
  """
  _checks.option("bins", bins, _checks.is_int(bins) and bins >= 1, "an int >= 1")
  confidence, correct, valid = _sets(logits, labels, where)
  temperature = _inputs.number("temperature", temperature, confidence.dtype, lambda t: t > 0, "a positive number")
  centres = jnp.reshape((jnp.arange(bins, dtype=confidence.dtype) + 0.5) / bins, (1,) * confidence.ndim + (bins,))
  membership = jax.nn.softmax(-jnp.square(confidence[..., None] - centres) / temperature, axis=-1)
  gap = jnp.where(valid, correct - confidence, 0)
  count = jnp.sum(valid, axis=-1).astype(confidence.dtype)
  per_bin = jnp.sum(membership * gap[..., None], axis=-2)
  per_set = _reduce.safe_divide(jnp.sum(_custom.abs(per_bin), axis=-1), count)
  return _reduce.reduce(per_set, reduction=reduction, weights=weights, where=count > 0)


@loss
def mmce(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  bandwidth: Numeric = 0.4,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Maximum mean calibration error: a kernel measure of miscalibration (Laplacian kernel).

  .. math::
    \ell = \sqrt{\frac{1}{N^2} \sum_{i, j} (a_i - c_i)(a_j - c_j)\, e^{-|c_i - c_j| / h}}

  over the ``N`` valid examples of a set, with ``c_i`` the top-class probability,
  ``a_i = [\arg\max_c z_{ic} = y_i]`` and ``h`` = ``bandwidth``.

  Args:
    logits: floating ``[..., N, C]``, class logits of a set of ``N`` examples.
    labels: integer class indices ``[..., N]``.
    bandwidth: the kernel width ``h > 0`` and finite. May be traced (a 0-d
      array or tracer, differentiable); a traced non-positive or non-finite
      bandwidth gives a meaningless value (:func:`jaxloss.checked` reports it).
    reduction: ``"mean"`` (default, over sets with a valid example), ``"sum"``
      or ``"none"``.
    weights: optional per-set weights broadcastable to ``[...]``.
    where: optional boolean example mask broadcastable to ``[..., N]``.

  Returns:
    A scalar, or ``[...]`` (one value per set) for ``reduction="none"``.

  Edges: the accuracy is a constant; ``|c_i - c_j|`` has subgradient 0 at
  tied confidences and the square root has gradient 0 where the sum is 0 (a
  perfectly calibrated set). ``O(N^2)`` memory per set. Metric: stands in for
  the expected calibration error (it is 0 exactly for a calibrated model).
  Reference: Kumar, Sarawagi and Jain, "Trainable Calibration Measures for
  Neural Networks from Kernel Mean Embeddings", ICML 2018.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> print(jl.mmce(jnp.array([[0.0, 0.0]]), jnp.array([0])))
    0.5
  """
  confidence, correct, valid = _sets(logits, labels, where)
  bandwidth = _inputs.number("bandwidth", bandwidth, confidence.dtype, lambda h: h > 0, "a positive number")
  gap = jnp.where(valid, correct - confidence, 0)
  n = confidence.shape[-1]
  off_diagonal = jnp.broadcast_to(~jnp.eye(n, dtype=bool), (*confidence.shape, n))
  distance = jnp.where(off_diagonal, _custom.abs(confidence[..., :, None] - confidence[..., None, :]), 0)
  kernel = jnp.exp(-distance / bandwidth)
  total = jnp.sum(gap[..., :, None] * gap[..., None, :] * kernel, axis=(-2, -1))
  count = jnp.sum(valid, axis=-1).astype(confidence.dtype)
  per_set = _custom.sqrt(_custom.relu(_reduce.safe_divide(total, jnp.square(count))))
  return _reduce.reduce(per_set, reduction=reduction, weights=weights, where=count > 0)
