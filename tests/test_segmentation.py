"""Segmentation overlap losses: values against NumPy float64 references with weights and masks, traced options at
their edges (0, where the ratio is 0/0), empty batches, errors and the checked mode."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

import jaxloss as jl


def ref_tversky(p, t, alpha, beta, smooth, axes):
  tp = np.sum(p * t, axis=axes)
  fp = np.sum(p * (1 - t), axis=axes)
  fn = np.sum((1 - p) * t, axis=axes)
  denominator = tp + alpha * fp + beta * fn + smooth
  return np.where(denominator > 0, 1 - (tp + smooth) / np.where(denominator > 0, denominator, 1), 0.0)


def ref_dice(p, t, smooth, axes):
  # Dice is Tversky with alpha = beta = 1/2 and the smoothing halved.
  return ref_tversky(p, t, 0.5, 0.5, smooth / 2, axes)


def _weighted_mean(per_example, weights, where):
  return np.sum(np.where(where, weights * per_example, 0)) / np.sum(np.where(where, weights, 0))


def test_matches_numpy_reference():
  rng = np.random.default_rng(0)
  p = rng.uniform(size=(4, 3, 5, 2))
  t = rng.choice([0.0, 1.0], size=p.shape)
  t[0] = 0.0
  p[0] = 0.0  # an empty prediction of an empty target: a perfect score without smoothing
  weights, where = rng.uniform(0.5, 2.0, (4, 3)), rng.uniform(size=(4, 3)) < 0.8
  where[1] = True
  axes = (-2, -1)

  def run(p, t):
    kw = {"axis": axes, "weights": weights, "where": where}
    return [
      jl.dice(p, t, smooth=0.0, axis=axes, reduction="none"),
      jl.dice(p, t, smooth=0.7, **kw),
      jl.tversky(p, t, alpha=0.3, beta=0.8, smooth=0.0, axis=axes, reduction="none"),
      jl.tversky(p, t, alpha=0.3, beta=0.8, smooth=0.4, **kw),
      jl.dice(p, t, reduction="none"),  # axis=None: every axis but the first
    ]

  with jax.enable_x64(True):
    out = jax.jit(run)(p, t)
  np.testing.assert_allclose(out[0], ref_dice(p, t, 0.0, axes), rtol=1e-12)
  np.testing.assert_allclose(out[1], _weighted_mean(ref_dice(p, t, 0.7, axes), weights, where), rtol=1e-12)
  np.testing.assert_allclose(out[2], ref_tversky(p, t, 0.3, 0.8, 0.0, axes), rtol=1e-12)
  np.testing.assert_allclose(out[3], _weighted_mean(ref_tversky(p, t, 0.3, 0.8, 0.4, axes), weights, where), rtol=1e-12)
  np.testing.assert_allclose(out[4], ref_dice(p, t, 1.0, (1, 2, 3)), rtol=1e-12)
  assert np.all(np.asarray(out[0])[0] == 0)


def test_traced_options_at_zero_have_finite_gradients():
  """A traced smooth (and alpha, beta) of 0 takes the constants' 0/0 rule: loss 0 and a zero, never NaN, gradient
  where nothing is predicted or present; elsewhere the option gradients match finite differences."""
  p = np.array([[0.0, 0.0, 0.0], [0.2, 0.9, 0.4]])
  t = np.array([[0.0, 0.0, 0.0], [0.0, 1.0, 1.0]])

  def losses(options, p):
    smooth, alpha, beta = options
    dice = jl.dice(p, t, smooth=smooth, reduction="sum")
    return dice + jl.tversky(p, t, alpha=alpha, beta=beta, smooth=smooth, reduction="sum")

  with jax.enable_x64(True):
    p = jnp.asarray(p)
    run = jax.jit(jax.value_and_grad(losses, argnums=(0, 1)))
    zero = [jnp.asarray(0.0)] * 3
    value, (option_grads, p_grad) = run(zero, p)
    assert all(np.isfinite(float(g)) for g in option_grads) and np.all(np.isfinite(np.asarray(p_grad)))
    np.testing.assert_array_equal(p_grad[0], 0.0)
    np.testing.assert_allclose(value, losses((0.0, 0.0, 0.0), p), rtol=1e-12)
    options = [jnp.asarray(v) for v in (0.3, 0.6, 0.8)]
    _, (option_grads, _) = run(options, p)
    for k in range(3):
      step = [jnp.asarray(1e-6 if j == k else 0.0) for j in range(3)]
      up = losses([o + s for o, s in zip(options, step, strict=True)], p)
      down = losses([o - s for o, s in zip(options, step, strict=True)], p)
      np.testing.assert_allclose(option_grads[k], (up - down) / 2e-6, rtol=1e-6)


def test_empty_batches_have_mean_zero():
  def run(x):
    calls = [lambda x: jl.dice(x, x), lambda x: jl.tversky(x, x, alpha=0.2, beta=0.8)]
    return [jax.value_and_grad(f)(x) for f in calls]

  for shape in [(0, 3, 4), (2, 0)]:
    for value, grad in jax.jit(run)(jnp.zeros(shape)):
      assert float(value) == 0.0 and not np.any(np.asarray(grad))


P = jnp.full((2, 3), 0.5)


# NaN is always an error; so is inf: smooth -> inf makes the loss the constant 0, alpha or beta -> inf a constant 1
# wherever there is a false positive (negative), neither a usable limit.
@pytest.mark.parametrize(
  "call, option",
  [
    (lambda v: jl.dice(P, P, smooth=v), "smooth"),
    (lambda v: jl.tversky(P, P, smooth=v), "smooth"),
    (lambda v: jl.tversky(P, P, alpha=v), "alpha"),
    (lambda v: jl.tversky(P, P, beta=v), "beta"),
  ],
)
def test_nan_and_infinite_options_are_errors(call, option):
  for value in (float("nan"), float("inf")):
    with pytest.raises(ValueError, match=rf"`{option}` must be a non-negative number.*got {value}"):
      call(value)
  with pytest.raises(ValueError, match=rf"`{option}` must be a non-negative number, got -1\.0"):
    call(-1.0)


@pytest.mark.parametrize(
  "call, error, pattern",
  [
    (lambda: jl.dice(jnp.ones(3), jnp.ones(3)), ValueError, r"jaxloss\.dice: with `axis=None` .* needs rank >= 2"),
    (
      lambda: jl.tversky(P, jnp.ones((2, 4))),
      ValueError,
      r"jaxloss\.tversky: `probs` and `targets` must have the same shape",
    ),
    (lambda: jl.dice(P, P, axis=2), ValueError, r"`axis`=2 is out of range for an array of rank 2"),
    (lambda: jl.dice(P, P, where=jnp.ones(3, bool)), ValueError, r"`where` must broadcast to the shape of the per-ex"),
  ],
)
def test_bad_input_fails_at_trace_time(call, error, pattern):
  with pytest.raises(error, match=pattern):
    call()


def test_checked_reports_values_outside_the_unit_interval():
  with pytest.raises(checkify.JaxRuntimeError, match=r"jaxloss\.dice: `targets` must be in \[0, 1\], found 2\.0"):
    jl.checked(jl.dice)(P, P.at[1, 1].set(2.0))
