"""Small ``jax.custom_jvp`` primitives with deliberate derivatives at kinks and edges.

jaxloss's convention is the minimum-norm subgradient: where 0 is in the
subdifferential, the derivative is exactly 0. ``jnp.abs`` gives +1 at 0 and
``jnp.maximum`` splits a tie 0.5/0.5; neither is a choice a loss should inherit.
custom_jvp (not custom_vjp) keeps forward mode, so ``jax.jvp``, ``jax.jacfwd``
and ``jax.hessian`` work through every primitive here.

The ReLU/hinge kink needs no new convention: ``jax.nn.relu`` already has
derivative 0 at 0 (Bertoin et al., "Numerical influence of ReLU'(0) on
backpropagation", NeurIPS 2021), and jaxloss uses it for ``max(0, x)``;
:func:`relu` has the same derivatives and is used where the loss is reduced
over a large elementwise array (it compiles to less memory traffic on CPU).
:func:`logsumexp` needs no custom rule either: guards alone keep its empty
rows at -inf with a zero gradient.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp

from jaxloss._api import is_array


@jax.custom_jvp
def abs(x: jax.Array) -> jax.Array:  # noqa: A001 - the module namespace is the point
  """``|x|`` with derivative ``sign(x)``: exactly 0 at ``x == 0`` (jnp.abs gives 1)."""
  return jnp.abs(x)


@abs.defjvp
def _abs_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  return jnp.abs(x), jnp.sign(x) * t


@jax.custom_jvp
def relu(x: jax.Array) -> jax.Array:
  """``max(0, x)`` with derivative 1 above 0 and exactly 0 at and below 0 (as ``jax.nn.relu``).

  Written for XLA:CPU's fusions, with identical values (NaN stays NaN) in both forms.
  Undifferentiated, it is ``jnp.maximum``, which the reduction fusion absorbs (no
  array is materialised). Differentiated, the value is a select and the derivative
  is read from it (``relu(x) > 0`` exactly where ``x > 0``): XLA then keeps one
  elementwise array, written in the gradient's output buffer, for the reduction and
  the gradient, where ``jax.nn.relu``'s maximum against a materialised zero broadcast
  kept two (hinge value_and_grad at 1e7 float32: temp memory 76 -> 0 MB), and a
  select in the undifferentiated form is materialised (forward ~5x slower).
  """
  return jnp.maximum(x, jnp.zeros_like(x))


@relu.defjvp
def _relu_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  y = jnp.where(x <= 0, jnp.zeros_like(x), x)
  return y, jnp.where(y > 0, t, jnp.zeros_like(t))


def pinball(e: jax.Array, q) -> jax.Array:
  """The quantile loss ``max(q e, (q - 1) e)`` with derivative ``q``, ``q - 1``, and exactly 0 at ``e == 0``.

  ``q`` is a constant (a Python number, folded into the program) or a traced
  0-d array, whose derivative is ``e`` (both branches have slope ``e`` in ``q``).
  """
  if isinstance(q, (int, float)):
    return _pinball(e, q)
  return _pinball_traced(e, q)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _pinball(e: jax.Array, q: float) -> jax.Array:
  """:func:`pinball` for a constant ``q``.

  The derivative is read from the value (``pinball(e) > 0`` exactly where ``e != 0``
  or, for ``q`` in {0, 1}, where the slope is nonzero), so XLA:CPU keeps the value as
  the one elementwise array both the reduction and the gradient read: no separate
  slope or error array (value_and_grad at 1e7 float32: temp memory 40 -> 0 MB,
  ~1.5x -> ~0.9x the plain jnp ``max`` expression).
  """
  return jnp.maximum(q * e, (q - 1) * e)


@_pinball.defjvp
def _pinball_jvp(q, primals, tangents):
  (e,), (t,) = primals, tangents
  y = _pinball(e, q)
  zero = jnp.zeros_like(e)
  slope = jnp.where(y > 0, jnp.where(e > 0, zero + q, zero + (q - 1)), zero)
  return y, slope * t


@jax.custom_jvp
def _pinball_traced(e: jax.Array, q: jax.Array) -> jax.Array:
  """:func:`pinball` for a traced ``q`` (a custom_jvp's non-differentiable argument would silently get gradient 0)."""
  return jnp.maximum(q * e, (q - 1) * e)


@_pinball_traced.defjvp
def _pinball_traced_jvp(primals, tangents):
  (e, q), (t, tq) = primals, tangents
  # As the constant form: the slope is read from the value (y > 0 exactly where the slope is nonzero, q in [0, 1]),
  # so XLA keeps one elementwise array for the reduction and the gradient.
  y = _pinball_traced(e, q)
  zero = jnp.zeros_like(e)
  slope = jnp.where(y > 0, jnp.where(e > 0, zero + q, zero + (q - 1)), zero)
  return y, slope * t + e * tq


@jax.custom_jvp
def sqrt(x: jax.Array) -> jax.Array:
  """``sqrt(x)`` for ``x >= 0`` with derivative 0 at ``x == 0`` instead of inf.

  Used where ``x`` is a sum of squares: ``sqrt(sum(e**2))`` is a norm, whose
  subdifferential at ``e == 0`` is the unit ball with minimum-norm element 0.
  """
  return jnp.sqrt(x)


@sqrt.defjvp
def _sqrt_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  y = jnp.sqrt(x)
  positive = x > 0
  return y, jnp.where(positive, t / (2 * jnp.where(positive, y, 1)), jnp.zeros_like(t))


@jax.custom_jvp
def safe_log(x: jax.Array) -> jax.Array:
  """``log(x)`` for ``x >= 0``: -inf at 0 (and below) with a zero (not NaN) derivative there.

  The value is ``log(max(x, 0))``, select-free, so XLA:CPU's elementwise-reduce
  fusion absorbs it (a ``where`` pair is hoisted out of that fusion and
  materialised: ``binary_cross_entropy`` forward at 1e7 float32 wrote 114 MB of
  temporaries). The derivative ``1 / x`` is taken only where ``x > 0`` and is 0
  elsewhere, so ``0 * log(0)`` terms masked with ``jnp.where(x > 0, ..., 0)``
  have a finite gradient, and higher derivatives stay finite too.
  """
  return jnp.log(jnp.maximum(x, 0))


@safe_log.defjvp
def _safe_log_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  positive = x > 0
  return safe_log(x), jnp.where(positive, t / jnp.where(positive, x, 1), jnp.zeros_like(t))


@jax.custom_jvp
def divide(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
  """``numerator / denominator`` whose derivatives never square the denominator.

  The quotient rule is written ``(dn - q dd) / d`` with ``q = n / d``, rather
  than ``dn / d - n dd / d**2``: a tiny denominator (1e-29 in float32) whose
  square underflows to 0 gives finite derivatives of every order instead of
  ``0 / 0``.
  """
  return numerator / denominator


@divide.defjvp
def _divide_jvp(primals, tangents):
  (n, d), (dn, dd) = primals, tangents
  q = divide(n, d)
  return q, divide(dn - q * dd, d)


@jax.custom_jvp
def straight_through_floor(x: jax.Array, floor: jax.Array) -> jax.Array:
  """``max(x, floor)`` whose derivative in ``x`` is 1 everywhere (straight through, as torch's
  ``gaussian_nll_loss`` clamp) and in ``floor`` is 1 where ``x < floor``.

  The value is a select-free ``maximum``, so XLA:CPU's elementwise-reduce fusion
  absorbs it (``x + where(x < floor, floor - stop_gradient(x), 0)`` is hoisted
  out of that fusion and materialised).
  """
  return jnp.maximum(x, floor)


@straight_through_floor.defjvp
def _straight_through_floor_jvp(primals, tangents):
  (x, floor), (dx, dfloor) = primals, tangents
  return straight_through_floor(x, floor), dx + jnp.where(x < floor, dfloor, jnp.zeros_like(dfloor))


@jax.custom_jvp
def floor(x: jax.Array, low: jax.Array) -> jax.Array:
  """``max(x, low)`` whose derivative is 1 in ``x`` strictly above ``low`` and 1 in ``low`` at and below it.

  At the tie ``x == low`` the floor takes over (derivative 0 in ``x``), as
  ``low + relu(x - low)`` with ``relu'(0) = 0``, but the value is a single
  ``maximum``, which XLA:CPU's elementwise-reduce fusion absorbs without the
  add and subtract (mape's forward at 1e6 float32 was 1.2x the plain
  ``jnp.maximum``, the quotient being compute-bound there).
  """
  return jnp.maximum(x, low)


@floor.defjvp
def _floor_jvp(primals, tangents):
  (x, low), (dx, dlow) = primals, tangents
  return floor(x, low), jnp.where(x > low, dx, dlow)


@jax.custom_jvp
def abs_ratio(x: jax.Array, scale: jax.Array) -> jax.Array:
  """``|x| / scale`` (a positive ``scale``) with derivative ``sign(x) / scale`` in ``x``: exactly 0 at ``x == 0``.

  The same values as ``abs(x) / scale`` and the same derivatives (in ``scale``,
  ``-|x| / scale**2``, written ``-(|x| / scale) / scale``), laid out for
  XLA:CPU's fusions when differentiated: the value is a select (bitwise
  ``|x| / scale``: ``0 / scale`` at ``x == 0``), which keeps the reduction
  fusion from absorbing it and materialising ``x`` and ``scale`` for the
  gradient as well, and the slope reads the value through a select that is
  never taken (``|x| / scale`` is never negative), so the value is computed
  once, where the gradient is. For ``mape`` ``value_and_grad`` at 1e7 float32
  that is about half the time of the plain quotient, with a constant or a
  traced ``eps`` alike. Undifferentiated, it is the plain quotient, which the
  reduction fusion absorbs whole.
  """
  return jnp.abs(x) / scale


@abs_ratio.defjvp
def _abs_ratio_jvp(primals, tangents):
  (x, scale), (dx, dscale) = primals, tangents
  zero = jnp.zeros_like(x)
  y = jnp.where(x == 0, zero / scale, jnp.abs(x) / scale)
  slope = jnp.where(y < 0, zero, jnp.sign(x) / scale)
  return y, slope * dx - (y / scale) * dscale


@jax.custom_jvp
def max(x: jax.Array) -> jax.Array:  # noqa: A001 - the module namespace is the point
  """``max`` over the last axis whose derivative averages over tied maximisers.

  The subdifferential of ``max`` at a tie is the convex hull of the tied unit
  vectors; their average is its minimum-norm element. (``jnp.max`` averages
  today, but jaxloss does not leave a tie to it.)
  """
  return jnp.max(x, axis=-1)


@max.defjvp
def _max_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  y = jnp.max(x, axis=-1)
  ties = x == y[..., None]
  count = jnp.sum(ties, axis=-1).astype(t.dtype)
  return y, jnp.sum(jnp.where(ties, t, 0), axis=-1) / count


_LOG_COSH_LINEAR = 40.0  # log(cosh(x)) = |x| - log 2 to working precision beyond it (float32 and float64)


@jax.custom_jvp
def log_cosh(x: jax.Array) -> jax.Array:
  """``log(cosh(x))`` without overflow for large ``|x|`` or cancellation near 0.

  ``cosh(a) - 1 = u**2 e**a / 2`` with ``u = expm1(-a)``, exactly and without
  cancellation (``u`` is accurate near 0, ``e**a`` never overflows for
  ``a <= 40``), so ``log1p`` of it is accurate where ``log(cosh(x))`` rounds to
  0 and everywhere else. Beyond ``|x| = 40`` the function is ``|x| - log 2``
  to float64 precision (the slope ``tanh`` is 1), so ``a`` is clamped there
  and the rest added. Select-free and short: XLA:CPU's reduction fusion
  absorbs it whole, where a select was materialised (forward at 1e7 float32:
  ~3x -> ~1.0x the plain ``jnp.log(jnp.cosh(x))``, which overflows past 89).
  The derivative is ``tanh(x)`` and the second derivative ``1 - tanh(x)**2``,
  including at 0.
  """
  a = jnp.abs(x)
  clamped = jnp.minimum(a, _LOG_COSH_LINEAR)
  u = jnp.expm1(-clamped)
  return jnp.log1p(0.5 * (u * u) * jnp.exp(clamped)) + (a - clamped)


@log_cosh.defjvp
def _log_cosh_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  y = log_cosh(x)
  # log_cosh >= 0, so the select never takes its zero branch; it makes the tangent read the
  # value, which lets XLA:CPU compute the value in the gradient's output buffer instead of a
  # fresh temporary (value_and_grad at 1e7 float32: temp 80 -> 0 MB, ~1.5x -> ~0.95x optax).
  return y, jnp.where(y < 0, jnp.zeros_like(x), jnp.tanh(x)) * t


def huber(e: jax.Array, delta: float) -> jax.Array:
  """Huber of ``e`` for a constant, finite, positive ``delta``: ``q (|e| - q / 2)`` with ``q = min(|e|, delta)``.

  That is ``e**2 / 2`` for ``|e| < delta`` (``|e| - q / 2 = q / 2`` exactly) and
  ``delta (|e| - delta / 2)`` elsewhere, the same floating-point operations as
  the two-branch form on each side, but select-free: XLA:CPU's reduction
  fusion takes ``min`` and absorbs the whole loss, where a select is
  materialised (forward at 1e7 float32: temp 40 -> 0 MB). The derivative is
  ``clip(e, -delta, delta)`` (0 at ``e == 0``), the second ``1`` inside and
  ``0`` outside ``(-delta, delta)``.
  """
  return _huber(e, delta)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _huber(e: jax.Array, delta: float) -> jax.Array:
  size = jnp.abs(e)
  q = jnp.minimum(size, delta)
  return q * (size - 0.5 * q)


@_huber.defjvp
def _huber_jvp(delta, primals, tangents):
  (e,), (t,) = primals, tangents
  size = jnp.abs(e)
  quadratic = size < delta
  # The two-branch form (bitwise the same value): differentiated, XLA:CPU keeps the value as one array that the
  # reduction reads, where the select-free form materialises |e| and a delta broadcast for the slope (80 MB, not 40).
  value = jnp.where(quadratic, 0.5 * e * e, delta * (size - 0.5 * delta))
  return value, jnp.where(quadratic, e, delta * jnp.sign(e)) * t


def _pnorm_value(x: jax.Array, p: float) -> jax.Array:
  """``||x||_p`` over the last axis, scaled by the largest entry so it neither overflows nor underflows."""
  size = jnp.abs(x)
  if p == 1:
    return jnp.sum(size, axis=-1)
  scale = jnp.max(size, axis=-1, keepdims=True)
  positive = scale > 0
  ratio = size / jnp.where(positive, scale, 1)
  return jnp.where(positive[..., 0], scale[..., 0] * jnp.sum(ratio**p, axis=-1) ** (1 / p), 0)


def norm(x: jax.Array, p: float) -> jax.Array:
  """The ``p``-norm (``p >= 1``) over the last axis, with derivative exactly 0 at ``x == 0``.

  The derivative is ``sign(x) * (|x| / ||x||_p)**(p - 1)``, the gradient of the
  norm wherever it is differentiable; at ``x == 0`` the subdifferential is the
  dual unit ball and its minimum-norm element is 0 (``jnp.linalg.norm`` gives
  NaN there). For ``p = 1`` a zero entry gets ``sign(0) = 0``, again the
  minimum-norm choice. Higher derivatives are finite everywhere. ``p = 2`` takes
  the unscaled ``sqrt(sum(x * x))`` whenever that is exact (:func:`_two_norm`).
  An empty last axis has norm 0.
  """
  if x.shape[-1] == 0:  # no max to scale by: the empty sum
    return jnp.zeros(x.shape[:-1], x.dtype)
  if p == 2:
    return _norm2(x)
  return _general_norm(x, p)


def _two_norm(x: jax.Array, factors: bool = False):
  """``||x||_2`` over the last axis; with ``factors``, also per-row ``k, w`` with ``x * k * w = x / ||x||_2``.

  ``sqrt(sum(x * x))`` needs no scaling while every row's sum of squares is
  finite and either 0 (a zero row) or far above the smallest normal number (so
  no square underflows enough to matter): then ``k = 1 / ||x||`` and ``w = 1``.
  Only if some row is outside that range does the whole batch take the scaled
  path, ``k = 1 / max|x|`` and ``w = 1 / ||x / max|x|||`` (a ``lax.cond``: only
  the branch taken runs). Both factors are 0 for a zero row. They are per-row,
  so the derivative ``sum(x * k * t) * w`` keeps no ``[..., D]`` residual (XLA
  recomputes ``x`` from the inputs); :func:`divide`, :func:`sqrt` and the
  scale-invariant scaled form keep its own derivatives (the Hessian) finite.
  """
  squares = jnp.sum(x * x, axis=-1)
  zero_row = jnp.all(x == 0, axis=-1)
  finfo = jnp.finfo(x.dtype)
  smallest = float(finfo.tiny) / float(finfo.eps)
  in_range = jnp.all(zero_row | ((squares >= smallest) & (squares <= float(finfo.max))))

  def unscaled(x):
    y = sqrt(squares)
    if not factors:
      return y
    k = jnp.where(zero_row, 0, divide(jnp.ones_like(y), jnp.where(zero_row, 1, y)))
    return y, k, jnp.ones_like(y)

  def scaled(x):
    # |x| / ||x|| is scale-invariant, so the scale can be a constant (stop_gradient) for the derivatives.
    scale = jax.lax.stop_gradient(jnp.max(jnp.abs(x), axis=-1))
    positive = scale > 0
    safe_scale = jnp.where(positive, scale, 1)
    scaled_norm = _general_norm(x / safe_scale[..., None], 2.0)  # in [1, sqrt(D)] for a nonzero row
    y = jnp.where(positive, safe_scale * scaled_norm, 0)
    if not factors:
      return y
    k = jnp.where(positive, 1 / safe_scale, 0)
    return y, k, jnp.where(positive, 1 / jnp.where(positive, scaled_norm, 1), 0)

  return jax.lax.cond(in_range, unscaled, scaled, x)


@jax.custom_jvp
def _norm2(x: jax.Array) -> jax.Array:
  """:func:`norm` for ``p = 2``."""
  return _two_norm(x)


@_norm2.defjvp
def _norm2_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  y, k, w = _two_norm(x, factors=True)
  return y, jnp.sum(x * k[..., None] * t, axis=-1) * w


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _general_norm(x: jax.Array, p: float) -> jax.Array:
  """:func:`norm` computed on ``x / max|x|`` for any ``p`` (overflow and underflow safe)."""
  return _pnorm_value(x, p)


@_general_norm.defjvp
def _general_norm_jvp(p, primals, tangents):
  (x,), (t,) = primals, tangents
  y = _general_norm(x, p)
  if p == 1:
    return y, jnp.sum(jnp.sign(x) * t, axis=-1)
  return y, jnp.sum(_pnorm_slope(x, p) * t, axis=-1)


def _pnorm_slope(x: jax.Array, p: float) -> jax.Array:
  """The gradient ``sign(x) * (|x| / ||x||_p)**(p - 1)`` of the ``p``-norm, 0 at ``x == 0`` (``p > 1``)."""
  # The slope |x| / ||x|| is scale-invariant: computing it on x / max|x| keeps its own derivatives (the
  # Hessian) finite for tiny x, where ||x||**2 would underflow. Double where: zero entries and rows never
  # reach the power or the division.
  scale = jax.lax.stop_gradient(jnp.max(jnp.abs(x), axis=-1, keepdims=True))
  nonzero_row = scale > 0
  z = x / jnp.where(nonzero_row, scale, 1)
  ratio = jnp.abs(z) / jnp.where(nonzero_row, _general_norm(z, p)[..., None], 1)
  nonzero = x != 0
  return jnp.where(nonzero, jnp.sign(x) * jnp.where(nonzero, ratio, 1) ** (p - 1), 0)


def shifted_norm(x: jax.Array, p: float, shift) -> jax.Array:
  """``||x + shift||_p`` over the last axis (``torch.pairwise_distance`` for ``x = x1 - x2``).

  torch adds ``eps`` to the difference to keep the gradient finite when two
  embeddings coincide, which makes that gradient point along ``+1`` (the
  direction of the shift) rather than be symmetric. Here the value is torch's,
  and the derivative in ``x`` is that of :func:`norm` at ``x + shift``, except
  at ``x == 0`` where it is exactly 0: the minimum-norm subgradient of the
  distance the shift approximates, the same for ``d(a, b)`` and ``d(b, a)``.

  ``p`` is static (it selects the norm). ``shift`` is a constant (a Python
  number, folded into the program) or a traced 0-d array, whose derivative is
  that of the value, ``sum(slope(x + shift))`` (at a zero ``x`` too: the value
  there is ``||shift * 1||_p``, differentiable in the shift).
  """
  if isinstance(shift, (int, float)):
    return _shifted_norm(x, p, shift)
  return _shifted_norm_traced(x, p, shift)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _shifted_norm(x: jax.Array, p: float, shift: float) -> jax.Array:
  """:func:`shifted_norm` for a constant ``shift``."""
  return norm(x + shift, p)


@_shifted_norm.defjvp
def _shifted_norm_jvp(p, shift, primals, tangents):
  (x,), (t,) = primals, tangents
  y, dy = jax.jvp(functools.partial(norm, p=p), (x + shift,), (t,))
  return y, jnp.where(jnp.all(x == 0, axis=-1), jnp.zeros_like(dy), dy)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _shifted_norm_traced(x: jax.Array, p: float, shift: jax.Array) -> jax.Array:
  """:func:`shifted_norm` for a traced ``shift`` (as a non-differentiable argument it would get gradient 0)."""
  return norm(x + shift, p)


@_shifted_norm_traced.defjvp
def _shifted_norm_traced_jvp(p, primals, tangents):
  (x, shift), (t, t_shift) = primals, tangents
  # The norm's derivative is linear in the tangent: the x part is zeroed on zero rows, the shift part never.
  t = jnp.where(jnp.all(x == 0, axis=-1, keepdims=True), jnp.zeros_like(t), t)
  return jax.jvp(functools.partial(norm, p=p), (x + shift,), (t + t_shift,))


def distance(x: jax.Array, y: jax.Array, shift) -> jax.Array:
  """``||x - y + shift||_2`` over the last axis: :func:`shifted_norm` for ``p = 2``, in fewer passes over ``x, y``.

  The same values and derivatives as ``shifted_norm(x - y, 2.0, shift)`` (the
  derivative in ``x`` is ``z / ||z||`` with ``z = x - y + shift``, minus that in
  ``y``, and exactly 0 for both where ``x == y``), computed from ``x`` and
  ``y`` rather than a materialised difference. The sum of squares and
  ``max|x - y|`` (0 exactly on the rows where ``x == y``) are one fused
  reduction; it is also the range check, so no separate ``x == y`` pass runs.
  A row whose sum of squares overflows or underflows sends the batch through
  the scaled path (a ``lax.cond`` on ``x, y``: the common branch materialises
  nothing). ``shift`` is a constant or a traced 0-d array (differentiable).
  """
  return distances(((x, y),), shift)[0]


def distances(pairs: tuple[tuple[jax.Array, jax.Array], ...], shift, stored=None) -> tuple[jax.Array, ...]:
  """:func:`distance` of every ``(x, y)`` in ``pairs`` with one ``lax.cond`` for all of them.

  A loss with several distances (a triplet's two or three) compiles one
  branch pair instead of one per distance; a row out of range in any pair
  sends all of them through the scaled path (the same values and derivatives).
  ``stored`` (None, or :func:`jaxloss._inputs.arrival_dtype`: a half dtype
  every array's values are exact in) is the dtype the ``lax.cond`` receives them in: XLA folds the
  round trip and hands the branch the caller's buffers, where the promoted
  copies would be materialised as the conditional's operands (bfloat16
  triplet_margin forward at 16384x128: 40 MB of temp and 5x jnp's time).
  """
  pairs = tuple((x, y) for x, y in pairs)
  if isinstance(shift, (int, float)):
    return _distance(pairs, shift, stored)
  return _distance_traced(pairs, shift, stored)


def _distance_parts(pairs, shift, stored, factors: bool = False):
  """The values of :func:`distances`; with ``factors``, per pair also ``k, w``, the rows where ``x == y``, and ``z``.

  ``z k w = z / ||z||`` (0 for ``z == 0``): the derivative is ``sum(z k dz) w``.

  The common branch needs one reduction per pair, the sum of squares: a row
  where ``x == y`` has ``z = shift`` exactly, so its sum of squares is about
  ``D shift**2``; only if some row's is that small (or out of range) does the
  other branch test ``x == y`` and rescale, row by row.
  """
  # XLA:CPU's reduction fusion materialises a broadcast that two reductions share (two distances with one shift:
  # a [..., D] array of eps, written once and read twice); a shift tied to y is a broadcast of this call's own.
  # A promoted half input shared by two pairs (a triplet's anchor) is likewise one float32 copy read twice: with
  # ``stored``, each pair converts its own (the barrier keeps the two converts apart).
  dtype = pairs[0][0].dtype
  squares = []
  for x, y in pairs:
    if stored is None:
      moved, _ = jax.lax.optimization_barrier((jnp.asarray(shift, dtype), y))
    else:
      moved, x, y = jax.lax.optimization_barrier((jnp.asarray(shift, dtype), x.astype(stored), y.astype(stored)))
      x, y = x.astype(dtype), y.astype(dtype)
    z = x - y + moved
    squares.append(jnp.sum(z * z, axis=-1))
  finfo = jnp.finfo(dtype)
  least: float | jax.Array = float(finfo.tiny) / float(finfo.eps)
  common = jnp.bool_(True)
  for (x, _), total in zip(pairs, squares, strict=True):
    bound = least
    if factors:  # the rows that may have x == y: at most D shift**2 up to the sum's rounding (2**-6 is far above it)
      bound = jnp.maximum(least, (x.shape[-1] * (1 + 2**-6)) * (jnp.asarray(shift, x.dtype) ** 2))
    common = common & jnp.all((total >= bound) & (total <= float(finfo.max)))

  # Plain sqrt and 1 / value below: both branches keep their arguments >= tiny / eps, so every derivative is finite.
  def unscaled(pairs, shift, squares):
    out: list[Any] = []
    for total in squares:
      value = jnp.sqrt(total)
      out.append((value, 1 / value, jnp.ones_like(value), jnp.zeros_like(value, bool)) if factors else value)
    return tuple(out)

  def checked(pairs, shift, squares):
    out: list[Any] = []
    for (x, y), total in zip(pairs, squares, strict=True):
      z = x - y + shift
      exact = (total >= float(finfo.tiny) / float(finfo.eps)) & (total <= float(finfo.max))
      # |z| / ||z|| is scale-invariant, so the scale can be a constant (stop_gradient) for the derivatives.
      scale = jax.lax.stop_gradient(jnp.max(jnp.abs(z), axis=-1, initial=0))
      positive = scale > 0
      safe_scale = jnp.where(positive | exact, scale, 1)
      u = z / safe_scale[..., None]
      scaled_norm = jnp.sqrt(jnp.sum(u * u, axis=-1))  # in [1, sqrt(D)] for a nonzero row: every derivative finite
      root = jnp.sqrt(jnp.where(exact, total, 1))
      value = jnp.where(exact, root, jnp.where(positive, safe_scale * scaled_norm, 0))
      if not factors:
        out.append(value)
        continue
      # Two factors: z k is O(1) on the scaled rows, so no derivative of z k w overflows (as in _two_norm).
      k = jnp.where(exact, 1 / root, jnp.where(positive, 1 / safe_scale, 0))
      w = jnp.where(exact | ~positive, 1, 1 / jnp.where(positive, scaled_norm, 1))
      same = jnp.max(jnp.abs(x - y), axis=-1, initial=0) == 0  # NaN compares unequal
      out.append((value, k, w, same))
    return tuple(out)

  def widened(branch):
    def run(stored_pairs, shift, squares):
      return branch(tuple((x.astype(dtype), y.astype(dtype)) for x, y in stored_pairs), shift, squares)

    return run

  operands = pairs if stored is None else tuple((x.astype(stored), y.astype(stored)) for x, y in pairs)
  out = jax.lax.cond(common, widened(unscaled), widened(checked), operands, shift, tuple(squares))
  if not factors:
    return out
  # z for the derivative, bitwise equal to the forward's (x - y == -(y - x) exactly) but a different expression:
  # a shared x - y would be materialised for both instead of fused into each.
  return tuple((*parts, shift - (y - x)) for parts, (x, y) in zip(out, pairs, strict=True))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _distance(pairs, shift: float, stored) -> tuple[jax.Array, ...]:
  """:func:`distances` for a constant ``shift``."""
  return _distance_parts(pairs, shift, stored)


@_distance.defjvp
def _distance_jvp(shift, stored, primals, tangents):
  ((pairs,), (dpairs,)) = primals, tangents
  values, slopes = [], []
  parts = _distance_parts(pairs, shift, stored, factors=True)
  for (value, k, w, same, z), (tx, ty) in zip(parts, dpairs, strict=True):
    k = jnp.where(same, jnp.zeros_like(k), k)
    values.append(value)
    slopes.append(jnp.sum(z * k[..., None] * (tx - ty), axis=-1) * w)
  return tuple(values), tuple(slopes)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _distance_traced(pairs, shift: jax.Array, stored) -> tuple[jax.Array, ...]:
  """:func:`distances` for a traced ``shift`` (as a non-differentiable argument it would get gradient 0)."""
  return _distance_parts(pairs, shift, stored)


@_distance_traced.defjvp
def _distance_traced_jvp(stored, primals, tangents):
  (pairs, shift), (dpairs, t_shift) = primals, tangents
  values, slopes = [], []
  parts = _distance_parts(pairs, shift, stored, factors=True)
  for (value, k, w, same, z), (tx, ty) in zip(parts, dpairs, strict=True):
    # The shift's derivative is the norm's at z on every row, x == y included (the value there is ||shift * 1||).
    dz = jnp.where(same[..., None], jnp.zeros_like(tx), tx - ty) + t_shift
    values.append(value)
    slopes.append(jnp.sum(z * k[..., None] * dz, axis=-1) * w)
  return tuple(values), tuple(slopes)


def logsumexp(x: jax.Array, where: jax.Array, axis: int = -1) -> jax.Array:
  """``log(sum(exp(x), where=where))`` over ``axis``: -inf with a zero gradient where nothing is selected.

  Unselected entries are -inf before the ``exp`` (0 after it), so inf/NaN there
  cannot leak into the value or the gradient; a row with no selected entry, or
  only -inf ones, gives -inf rather than NaN, told by its max (no separate
  ``any`` pass over ``x``); an empty axis gives -inf.
  """
  masked = jnp.where(where, x, -jnp.inf)
  top = jax.lax.stop_gradient(jnp.max(masked, axis=axis, keepdims=True, initial=-jnp.inf))
  none = top == -jnp.inf
  top = jnp.where(none, 0, top)
  total = jnp.sum(jnp.exp(masked - top), axis=axis, keepdims=True)
  out = jnp.where(none, -jnp.inf, jnp.log(jnp.where(none, 1, total)) + top)
  return jnp.squeeze(out, axis=axis)


def _mean(x: jax.Array, axes: tuple[int, ...]) -> jax.Array:
  """``jnp.mean`` over ``axes``, 0 (not NaN) where they hold no element (an empty example, as an all-masked one)."""
  if math.prod(x.shape[a] for a in axes) == 0:
    return jnp.sum(x, axis=axes)
  return jnp.mean(x, axis=axes)


def _mean_of_squares(e: jax.Array, w: jax.Array | None, axes: tuple[int, ...]) -> jax.Array:
  """``sum(w e**2) / sum(w)`` over ``axes`` (``w`` None: the plain mean); 0 where the weights sum to 0."""
  if w is None:
    return _mean(e * e, axes)
  total = jnp.sum(w, axis=axes)
  positive = total > 0
  return jnp.where(positive, jnp.sum(w * e * e, axis=axes) / jnp.where(positive, total, 1), 0)


@functools.partial(jax.custom_jvp, nondiff_argnums=(3,))
def root_mean_square(p: jax.Array, t: jax.Array, w: jax.Array | None, axes: tuple[int, ...]) -> jax.Array:
  """``sqrt(sum(w e**2) / sum(w))`` over ``axes`` with ``e = p - t``, exact where the squares overflow or underflow.

  The squares are summed as they are (one pass, fused with ``p - t``) unless a
  mean overflows (``|e| > 1.8e19`` in float32) or falls below
  ``tiny / eps``; only then (a ``lax.cond`` on ``p`` and ``t``, so the common
  branch materialises nothing) is each example's error divided by its largest
  magnitude before squaring, as the p = 2 norms here do. The derivative is
  ``w r / sum(w)`` with ``r = e / rms`` (for ``p``; minus that for ``t``) and
  ``(r**2 - 1) rms / (2 sum(w))`` for ``w``: no square of ``e`` or of the root
  appears, so it is finite for every finite input, and exactly 0 at zero
  error (the minimum-norm subgradient of a norm at 0). ``w`` (None, or
  non-negative weights of ``p``'s shape, 0 for masked elements) holds the mask.
  """
  squares = _mean_of_squares(p - t, w, axes)
  finfo = jnp.finfo(squares.dtype)
  exact = jnp.all(jnp.isfinite(squares) & (squares >= float(finfo.tiny) / float(finfo.eps)))

  def scaled(p, t, w):
    e = p - t
    largest = jnp.max(jnp.abs(e), axis=axes, initial=0)  # an empty example: 0 (both branches are traced)
    scale = jnp.where(largest > 0, largest, 1)
    return scale * jnp.sqrt(_mean_of_squares(e / jnp.expand_dims(scale, axes), w, axes))

  return jax.lax.cond(exact, lambda p, t, w: jnp.sqrt(squares), scaled, p, t, w)


@root_mean_square.defjvp
def _root_mean_square_jvp(axes, primals, tangents):
  (p, t, w), (dp, dt, dw) = primals, tangents
  y = root_mean_square(p, t, w, axes)
  positive = y > 0
  safe_y = jnp.expand_dims(jnp.where(positive, y, 1), axes)
  ratio = jnp.where(jnp.expand_dims(positive, axes), divide(p - t, safe_y), 0)  # e / rms, bounded by sqrt(n)
  if w is None:
    return y, _mean(ratio * (dp - dt), axes)
  total = jnp.sum(w, axis=axes)
  safe_total = jnp.where(total > 0, total, 1)
  dy = jnp.sum(w * ratio * (dp - dt), axis=axes) + 0.5 * jnp.sum(dw * (ratio * ratio - 1), axis=axes) * y
  return y, jnp.where(positive & (total > 0), dy / safe_total, 0)


def softcapped(x: jax.Array, softcap) -> jax.Array:
  """``softcap * tanh(x / softcap)`` (Gemma 2's logit soft-capping); ``x`` itself for None or inf (the limit).

  ``softcap`` is None, a Python number (folded into the program) or a traced
  0-d array, whose inf is exactly no capping (value and derivatives). Shared by
  :func:`jaxloss.cross_entropy` and :func:`jaxloss.linear_cross_entropy`, whose
  blocks differentiate it with ``jax.vjp`` (plain autodiff: the derivative is
  ``1 - tanh**2`` in ``x`` and ``tanh - (x / softcap) (1 - tanh**2)`` in ``softcap``).
  """
  if softcap is None or (not is_array(softcap) and softcap == math.inf):
    return x
  if not is_array(softcap):
    return softcap * jnp.tanh(x / softcap)
  capped = jnp.isfinite(softcap)
  cap = jnp.where(capped, softcap, jnp.ones((), softcap.dtype))
  # An infinite logit reaches tanh as itself: x / cap would make the derivative in cap 0 * inf.
  infinite = jnp.isinf(x)
  ratio = jnp.where(infinite, x, jnp.where(infinite, jnp.zeros((), x.dtype), x) / cap)
  return jnp.where(capped, cap * jnp.tanh(ratio), x)
