"""Losses for real-valued targets: elementwise errors and likelihoods.

Every loss here is elementwise: ``predictions`` and ``targets`` have the same
shape (no broadcasting between them), ``reduction="none"`` returns one value per
element, and ``weights`` / ``where`` broadcast to that shape. Inputs are
computed in float32 at least (float16 and bfloat16 are promoted, so the result
is float32 for them; float64 stays float64 when x64 is enabled).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxloss import _checks, _custom, _inputs, _reduce
from jaxloss._api import Numeric, Static, loss

_FLOAT64_EPS = float(np.finfo(np.float64).eps)  # mape's default floor, as scikit-learn


def _pair(predictions, targets, where, dtype_from=()):
  """Validated, promoted, masked ``(predictions, targets, mask)`` of an elementwise loss."""
  return _inputs.prepare(
    ("predictions", predictions, "floating"), ("targets", targets, "real"), where=where, dtype_from=dtype_from
  )


@loss
def mse(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Mean squared error (squared L2 error per element).

  .. math::
    \ell_i = (p_i - t_i)^2

  Args:
    predictions: floating array of any shape ``[...]``.
    targets: array of the same shape.
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``; False entries
      contribute nothing (value and gradient exactly 0).

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``; float32 for half inputs.

  Smooth everywhere. Matches ``torch.nn.functional.mse_loss`` and, per element,
  ``optax.losses.squared_error``.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> print(jl.mse(jnp.array([1.0, 2.0]), jnp.array([1.0, 4.0])))
    2.0
  """
  p, t, mask = _pair(predictions, targets, where)
  return _reduce.reduce(jnp.square(p - t), reduction=reduction, weights=weights, where=mask)


@loss
def mae(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Mean absolute error (L1 error per element).

  .. math::
    \ell_i = |p_i - t_i|

  Args:
    predictions: floating array of any shape ``[...]``.
    targets: array of the same shape.
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``.

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``; float32 for half inputs.

  Subgradient: ``sign(p - t)``, exactly 0 where ``p == t`` (the minimum-norm
  element of ``[-1, 1]``). ``jnp.abs`` would give +1 there, and
  ``torch.nn.functional.l1_loss`` gives 0 as well. Values match
  ``torch.nn.functional.l1_loss``.

  Example:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> x = jnp.array([1.0, 2.0])
    >>> print(jl.mae(x, jnp.array([1.0, 4.0])))
    1.0
    >>> print(jax.grad(jl.mae)(x, x))
    [0. 0.]
  """
  p, t, mask = _pair(predictions, targets, where)
  return _reduce.reduce(_custom.abs(p - t), reduction=reduction, weights=weights, where=mask)


@loss
def rmse(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  axis: Static[int | tuple[int, ...] | None] = None,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Root mean squared error, over all elements or per example along ``axis``.

  .. math::
    \mathrm{rmse} = \sqrt{\frac{\sum_i w_i m_i (p_i - t_i)^2}{\sum_i w_i m_i}}

  The sums run over every element when ``axis is None`` (one scalar), or over
  ``axis`` (one value per example, then reduced over examples).

  Args:
    predictions: floating array of any shape ``[...]``.
    targets: array of the same shape.
    axis: ``None`` (default) for a single RMSE over all elements, or an int /
      tuple of ints: the axes each example's RMSE is taken over.
    reduction: how per-example RMSEs are combined when ``axis`` is given:
      ``"mean"`` (over examples with at least one unmasked element), ``"sum"``
      or ``"none"``. With ``axis=None`` every reduction returns the one scalar.
    weights: optional per-element weights broadcastable to ``predictions``;
      they weight the squared errors inside the square root.
    where: optional per-element mask broadcastable to ``predictions``.

  Returns:
    A scalar, or the shape of ``predictions`` without ``axis`` for
    ``reduction="none"`` with an ``axis``.

  Subgradient: RMSE is a (scaled, weighted) Euclidean norm of the error, so at
  zero error its gradient is exactly 0, the minimum-norm element of the unit
  ball; ``jnp.sqrt(jnp.mean(e**2))`` gives NaN there. An example with no
  unmasked element (or no element at all) has RMSE 0 and does not count in the mean.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> p = jnp.array([[0.0, 0.0], [3.0, 4.0]])
    >>> print(jl.rmse(p, jnp.zeros((2, 2)), axis=-1, reduction="none"))
    [0.       3.535534]
  """
  _reduce.check_reduction(reduction)
  p, t, mask = _pair(predictions, targets, where)
  axes = _checks.axis_tuple(axis, p.ndim)
  per_example = _root_mean_square(p, t, weights, mask, axes)
  if axis is None:
    return per_example
  counted = None
  if weights is not None or mask is not None:  # examples with no weight left leave the outer mean
    ones = jnp.ones_like(p)
    counted = _reduce.reduce(ones, reduction="sum", weights=weights, where=mask, axis=axes, of="`predictions`") != 0
  return _reduce.reduce(per_example, reduction=reduction, where=counted)


def _root_mean_square(p: jax.Array, t: jax.Array, weights, mask, axes: tuple[int, ...]) -> jax.Array:
  """The weighted masked root mean square of ``p - t`` over ``axes`` (see :func:`_custom.root_mean_square`)."""
  w = _inputs.weights(weights, p.shape, p.dtype, of="`predictions`")
  if mask is not None:  # a masked element is one of weight 0 (the mean counts only the others)
    w = jnp.where(mask, jnp.ones((), p.dtype) if w is None else w, jnp.zeros((), p.dtype))
  return _custom.root_mean_square(p, t, w, axes)


@loss
def huber(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  delta: Numeric = 1.0,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Huber loss: quadratic for small errors, linear for large ones.

  .. math::
    \ell_i = \begin{cases} \tfrac12 e_i^2 & |e_i| < \delta \\
      \delta\,(|e_i| - \tfrac12\delta) & \text{otherwise} \end{cases},
    \qquad e_i = p_i - t_i

  Args:
    predictions: floating array of any shape ``[...]``.
    targets: array of the same shape.
    delta: positive threshold between the quadratic and linear parts; ``inf``
      gives half the squared error (the limit). May be traced (a 0-d array or
      tracer, e.g. under ``jax.vmap`` over deltas); a traced ``delta <= 0`` gives
      the linear branch everywhere, a meaningless value (``jl.checked`` reports it).
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``.

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``.

  Continuously differentiable (no kink): the gradient is ``clip(e, -delta,
  delta)``. Matches ``torch.nn.functional.huber_loss`` and
  ``optax.losses.huber_loss`` (Huber, "Robust Estimation of a Location
  Parameter", 1964).

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> print(jl.huber(jnp.array([0.5, 3.0]), jnp.zeros(2), reduction="none"))
    [0.125 2.5  ]
  """
  p, t, mask = _pair(predictions, targets, where)
  delta = _inputs.number("delta", delta, p.dtype, lambda d: d > 0, "a positive number", infinite_ok=True)
  return _reduce.reduce(_huber(p - t, delta), reduction=reduction, weights=weights, where=mask)


def _huber(error: jax.Array, delta) -> jax.Array:
  """Huber of ``error`` elementwise; ``delta`` may be traced, and infinite (half the squared error)."""
  if _inputs.is_constant(delta, np.inf):  # the limit
    return 0.5 * error * error
  if not _inputs.is_array(delta):
    return _custom.huber(error, delta)
  size = _custom.abs(error)
  quadratic = size < delta
  if _inputs.is_array(delta):
    # Double where: the linear branch never sees an infinite traced delta, so its gradient stays finite.
    delta = jnp.where(quadratic, jnp.zeros((), delta.dtype), delta)
  return jnp.where(quadratic, 0.5 * error * error, delta * (size - 0.5 * delta))


@loss
def smooth_l1(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  beta: Numeric = 1.0,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Smooth L1 loss: Huber divided by ``beta``, exactly MAE at ``beta = 0``.

  .. math::
    \ell_i = \begin{cases} \tfrac{1}{2\beta} e_i^2 & |e_i| < \beta \\
      |e_i| - \tfrac12\beta & \text{otherwise} \end{cases},
    \qquad e_i = p_i - t_i

  Args:
    predictions: floating array of any shape ``[...]``.
    targets: array of the same shape.
    beta: non-negative threshold; 0 gives :func:`mae` exactly. May be traced
      (a traced 0 is :func:`mae` too); a traced negative ``beta`` gives
      ``|e| - beta / 2``, a meaningless value (``jl.checked`` reports it).
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``.

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``.

  Smooth for ``beta > 0``; for ``beta = 0`` it is :func:`mae`, gradient exactly
  0 at ``p == t``. Matches ``torch.nn.functional.smooth_l1_loss`` (Girshick,
  "Fast R-CNN", 2015).

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> print(jl.smooth_l1(jnp.array([0.5, 3.0]), jnp.zeros(2), reduction="none"))
    [0.125 2.5  ]
  """
  p, t, mask = _pair(predictions, targets, where)
  beta = _inputs.number("beta", beta, p.dtype, lambda b: b >= 0, "a non-negative number")
  error = p - t
  size = _custom.abs(error)
  if _inputs.is_constant(beta, 0):
    loss = size
  elif not _inputs.is_array(beta):
    # huber(e, beta) / beta: the select-free Huber that XLA:CPU fuses into the reduction
    loss = _huber(error, beta) / beta
  else:
    # A traced beta may be 0 (then no element is below it): the division never sees it.
    safe_beta = jnp.where(jnp.greater(beta, 0), beta, 1)
    loss = jnp.where(size < beta, 0.5 * error * error / safe_beta, size - 0.5 * beta)
  return _reduce.reduce(loss, reduction=reduction, weights=weights, where=mask)


@loss
def log_cosh(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Log-cosh loss, a smooth approximation of MAE.

  .. math::
    \ell_i = \log\cosh(p_i - t_i)

  Args:
    predictions: floating array of any shape ``[...]``.
    targets: array of the same shape.
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``.

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``.

  Smooth: gradient ``tanh(e)``, Hessian ``1 - tanh(e)**2``. Stable for large
  errors (no overflow of ``cosh``) and accurate for tiny ones (no cancellation
  against ``log 2``, which ``optax.losses.log_cosh`` suffers below ~1e-3 in
  float32). Values match ``optax.losses.log_cosh``.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> print(jl.log_cosh(jnp.array([0.0, 1000.0]), jnp.zeros(2), reduction="none"))
    [  0.     999.3069]
  """
  p, t, mask = _pair(predictions, targets, where)
  return _reduce.reduce(_custom.log_cosh(p - t), reduction=reduction, weights=weights, where=mask)


@loss
def quantile(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  q: Numeric = 0.5,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Quantile (pinball) loss, minimised by the ``q``-quantile of the targets.

  .. math::
    \ell_i = \max(q\,e_i,\ (q - 1)\,e_i), \qquad e_i = t_i - p_i

  Args:
    predictions: floating array of any shape ``[...]``.
    targets: array of the same shape.
    q: the quantile level, in ``[0, 1]``; ``q = 0.5`` is half the MAE. May be
      traced (its gradient is ``t - p`` per element, so ``q`` can be learned); a
      traced ``q`` outside ``[0, 1]`` gives a loss that is not a quantile loss
      (``jl.checked`` reports it).
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``.

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``.

  Subgradient: ``-q`` where the prediction is below the target, ``1 - q``
  above, and exactly 0 at ``p == t`` (0 lies in ``[-q, 1 - q]``). Reference:
  Koenker and Bassett, "Regression Quantiles", Econometrica 1978.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> print(jl.quantile(jnp.array([0.0, 2.0]), jnp.ones(2), q=0.9, reduction="none"))
    [0.9 0.1]
  """
  p, t, mask = _pair(predictions, targets, where)
  q = _inputs.number("q", q, p.dtype, lambda q: (q >= 0) & (q <= 1), "in [0, 1]")
  return _reduce.reduce(_custom.pinball(t - p, q), reduction=reduction, weights=weights, where=mask)


@loss
def msle(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Mean squared logarithmic error.

  .. math::
    \ell_i = (\log(1 + p_i) - \log(1 + t_i))^2

  Args:
    predictions: floating array of any shape ``[...]``, entries > -1.
    targets: array of the same shape, entries > -1.
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``.

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``.

  Domain: entries <= -1 give inf or NaN, which :func:`jaxloss.checked` reports
  as an error. Unlike Keras's ``MeanSquaredLogarithmicError``, inputs are not
  clipped, so a negative prediction is never silently treated as 0.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> print(jl.msle(jnp.array([0.0]), jnp.array([jnp.e - 1])))
    1.0
  """
  p, t, mask = _pair(predictions, targets, where)
  _checks.debug_values("predictions", p, lambda: p > -1, "> -1")
  _checks.debug_values("targets", t, lambda: t > -1, "> -1")
  error = jnp.log1p(p) - jnp.log1p(t)
  return _reduce.reduce(error * error, reduction=reduction, weights=weights, where=mask)


@loss
def mape(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  eps: Numeric = _FLOAT64_EPS,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Mean absolute percentage error, as a fraction (not multiplied by 100).

  .. math::
    \ell_i = \frac{|p_i - t_i|}{\max(|t_i|, \epsilon)}

  Args:
    predictions: floating array of any shape ``[...]``.
    targets: array of the same shape.
    eps: positive floor on ``|t|`` so zero targets give a large finite loss
      (default: float64 machine epsilon, as scikit-learn). May be traced; a
      traced ``eps <= 0`` gives inf or NaN at zero targets (``jl.checked``
      reports it).
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``.

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``.

  Subgradient: 0 with respect to the prediction where ``p == t``; with respect
  to the target, ``|t|`` has derivative 0 at 0 and the floor takes over at a
  tie ``|t| == eps`` (derivative 0, the minimum-norm choice). Matches
  ``sklearn.metrics.mean_absolute_percentage_error``.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> print(jl.mape(jnp.array([110.0, 45.0]), jnp.array([100.0, 50.0])))
    0.1
  """
  p, t, mask = _pair(predictions, targets, where)
  eps = _inputs.number("eps", eps, p.dtype, lambda e: e > 0, "a positive number")
  # max(|t|, eps) with derivative 0 in |t| at the tie; a maximum, not a select, which
  # XLA:CPU cannot fuse into the reduction (forward was ~4x the jnp).
  scale = _custom.floor(_custom.abs(t), eps)
  loss = _custom.abs_ratio(p - t, scale)
  return _reduce.reduce(loss, reduction=reduction, weights=weights, where=mask)


@loss
def poisson_nll(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  log_input: Static[bool] = True,
  full: Static[bool] = False,
  eps: Numeric = 1e-8,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Negative log-likelihood of a Poisson distribution with the predicted rate.

  .. math::
    \ell_i = \begin{cases} e^{p_i} - t_i p_i & \text{log\_input} \\
      p_i - t_i \log(p_i + \epsilon) & \text{otherwise} \end{cases}
      \;+\; [\text{full}]\,[t_i > 1]\,\big(t_i \log t_i - t_i + \tfrac12 \log(2\pi t_i)\big)

  Args:
    predictions: floating array ``[...]``: the log-rate if ``log_input``, else
      the rate (>= 0).
    targets: counts, same shape (any real dtype, >= 0).
    log_input: whether ``predictions`` is the log of the rate.
    full: add the Stirling approximation of ``log(t!)`` (for ``t > 1``).
    eps: non-negative, added to the rate under the log when
      ``log_input=False``. May be traced; a traced negative ``eps`` can give NaN
      (``jl.checked`` reports it).
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``.

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``.

  Smooth in the prediction. The Stirling term is 0 for ``t <= 1`` and its
  gradient with respect to the target is finite everywhere. Matches
  ``torch.nn.functional.poisson_nll_loss``.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> print(jl.poisson_nll(jnp.array([0.0]), jnp.array([2.0])))
    1.0
  """
  p, t, mask = _pair(predictions, targets, where)
  eps = _inputs.number("eps", eps, p.dtype, lambda e: e >= 0, "a non-negative number")
  _checks.debug_values("targets", t, lambda: t >= 0, ">= 0")
  if log_input:
    loss = jnp.exp(p) - t * p
  else:
    _checks.debug_values("predictions", p, lambda: p >= 0, ">= 0 (a rate)")
    loss = p - t * jnp.log(p + eps)
  if full:
    above_one = t > 1
    t_safe = jnp.where(above_one, t, 2)
    stirling = t_safe * jnp.log(t_safe) - t_safe + 0.5 * jnp.log(2 * np.pi * t_safe)
    loss = loss + jnp.where(above_one, stirling, 0)
  return _reduce.reduce(loss, reduction=reduction, weights=weights, where=mask)


def _variance_shape(variance: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  """``variance`` broadcast to ``shape``, for every ``var`` shape torch accepts.

  torch 2.13's ``gaussian_nll_loss`` takes the shape of the input (heteroscedastic),
  the input's shape without its last axis (one variance per example), the input's
  rank with exactly one axis of size 1 where the input's differs (``(N, 1)``,
  ``(1, D)`` shared over the batch, ``(N, 1, H, W)``), and a scalar (its float ``var``).
  """
  if variance.shape == shape:
    return variance
  if variance.ndim == 0:
    return jnp.broadcast_to(variance, shape)
  if len(shape) >= 1 and variance.shape == shape[:-1]:
    return jnp.broadcast_to(variance[..., None], shape)
  differ = [(n, m) for n, m in zip(shape, variance.shape, strict=False) if n != m]
  if variance.ndim == len(shape) and len(differ) == 1 and differ[0][1] == 1:
    return jnp.broadcast_to(variance, shape)
  raise ValueError(
    f"{_checks.name()}: `variance` must have the shape of `predictions` {shape}, that shape without its"
    " last axis (one variance per example), the same rank with exactly one axis of size 1 where"
    f" `predictions` differs (e.g. shared over the batch), or be a scalar; got variance.shape={variance.shape}."
  )


@loss
def gaussian_nll(
  predictions: ArrayLike,
  targets: ArrayLike,
  variance: ArrayLike,
  *,
  full: Static[bool] = False,
  eps: Numeric = 1e-6,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Negative log-likelihood of a Gaussian with predicted mean and variance.

  .. math::
    \ell_i = \tfrac12\Big(\log \max(v_i, \epsilon)
      + \frac{(p_i - t_i)^2}{\max(v_i, \epsilon)}\Big) + [\text{full}]\,\tfrac12\log 2\pi

  Args:
    predictions: floating array ``[..., D]``, the predicted means.
    targets: array of the same shape.
    variance: floating, non-negative: shape ``[..., D]`` (heteroscedastic),
      ``[..., 1]`` or ``[...]`` (one variance per example, as torch).
    full: add the constant ``log(2 pi) / 2``.
    eps: positive floor on the variance, for stability. May be traced (its
      gradient is that of the floored variance where the floor applies); a
      traced ``eps <= 0`` lets a zero variance give inf (``jl.checked`` reports it).
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional weights broadcastable to ``[..., D]``.
    where: optional boolean mask broadcastable to ``[..., D]``.

  Returns:
    A scalar, or ``[..., D]`` for ``reduction="none"``.

  Edge convention: the variance floor is applied as in torch, outside of
  autodiff (straight-through), so a variance below ``eps`` still receives the
  gradient it would have at ``eps`` and can grow out of the floor. Negative
  variances are reported by :func:`jaxloss.checked` (torch raises). Matches
  ``torch.nn.functional.gaussian_nll_loss``.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> print(jl.gaussian_nll(jnp.array([1.0]), jnp.array([3.0]), jnp.array([4.0])))
    1.1931472
  """
  v = _checks.floating("variance", variance)
  p, t, mask = _pair(predictions, targets, where, dtype_from=(v,))
  eps = _inputs.number("eps", eps, p.dtype, lambda e: e > 0, "a positive number")
  v = _variance_shape(v, p.shape).astype(p.dtype)
  v = _inputs.zero_masked(mask, v, fill=1)
  _checks.debug_values("variance", v, lambda: v >= 0, ">= 0")
  # The floor max(v, eps), straight-through in v as torch's (a variance below eps still gets the
  # gradient it would have at eps), and with its derivative with respect to eps where it applies.
  v = _custom.straight_through_floor(v, eps)
  error = p - t
  # e * (e / v), not e**2 / v: the square of a large error overflows where the loss fits (e = 2e30,
  # v = 1e30 in float32), and the quotient rule of _custom.divide never squares v in the gradient.
  loss = 0.5 * (jnp.log(v) + error * _custom.divide(error, v))
  if full:
    loss = loss + 0.5 * np.log(2 * np.pi)
  return _reduce.reduce(loss, reduction=reduction, weights=weights, where=mask)
