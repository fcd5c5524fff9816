"""Regression losses: values against NumPy float64 references written from the
formulas, values and gradients against torch.nn.functional in float64, exact
subgradients at every kink, and accuracy at the edges."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import jaxloss as jl

SHAPES = [(7,), (3, 4), (2, 3, 5)]


def _rng(seed=0):
  return np.random.default_rng(seed)


def _reduce(per_element, reduction, weights=None, where=None):
  """Reference reduction, written independently of jaxloss._reduce."""
  w = np.ones_like(per_element) if weights is None else np.broadcast_to(weights, per_element.shape)
  m = np.ones_like(per_element) if where is None else np.broadcast_to(where, per_element.shape)
  wl = np.where(m > 0, w * per_element, 0.0)
  if reduction == "none":
    return wl
  if reduction == "sum":
    return wl.sum()
  return wl.sum() / (w * m).sum()


# Float64 NumPy references, one per loss, straight from the formula.
def ref_mse(p, t):
  return (p - t) ** 2


def ref_mae(p, t):
  return np.abs(p - t)


def ref_huber(p, t, delta=1.0):
  e = np.abs(p - t)
  return np.where(e < delta, 0.5 * e**2, delta * (e - 0.5 * delta))


def ref_smooth_l1(p, t, beta=1.0):
  e = np.abs(p - t)
  if beta == 0:
    return e
  return np.where(e < beta, 0.5 * e**2 / beta, e - 0.5 * beta)


def ref_log_cosh(p, t):
  return np.log(np.cosh(p - t))


def ref_quantile(p, t, q=0.5):
  e = t - p
  return np.where(e >= 0, q * e, (q - 1) * e)


def ref_msle(p, t):
  return (np.log(1 + p) - np.log(1 + t)) ** 2


FLOAT64_EPS = float(np.finfo(np.float64).eps)


def ref_mape(p, t, eps=FLOAT64_EPS):
  return np.abs(p - t) / np.maximum(np.abs(t), eps)


def ref_poisson_nll(p, t, log_input=True, full=False, eps=1e-8):
  out = np.exp(p) - t * p if log_input else p - t * np.log(p + eps)
  if full:
    with np.errstate(divide="ignore", invalid="ignore"):
      stirling = t * np.log(t) - t + 0.5 * np.log(2 * np.pi * t)
    out = out + np.where(t > 1, stirling, 0.0)
  return out


def ref_gaussian_nll(p, t, v, full=False, eps=1e-6):
  v = np.maximum(v, eps)
  out = 0.5 * (np.log(v) + (p - t) ** 2 / v)
  return out + (0.5 * np.log(2 * np.pi) if full else 0.0)


def _inputs(name, shape, rng):
  p, t = rng.normal(size=shape), rng.normal(size=shape)
  if name == "msle":
    p, t = rng.uniform(0, 3, shape), rng.uniform(0, 3, shape)
  if name == "poisson_nll":
    t = rng.poisson(2.0, shape).astype(np.float64)
  return p, t


ELEMENTWISE = [
  ("mse", jl.mse, ref_mse, {}),
  ("mae", jl.mae, ref_mae, {}),
  ("huber", jl.huber, ref_huber, {}),
  ("huber", jl.huber, ref_huber, {"delta": 0.4}),
  ("smooth_l1", jl.smooth_l1, ref_smooth_l1, {}),
  ("smooth_l1", jl.smooth_l1, ref_smooth_l1, {"beta": 2.0}),
  ("smooth_l1", jl.smooth_l1, ref_smooth_l1, {"beta": 0.0}),
  ("log_cosh", jl.log_cosh, ref_log_cosh, {}),
  ("quantile", jl.quantile, ref_quantile, {}),
  ("quantile", jl.quantile, ref_quantile, {"q": 0.1}),
  ("msle", jl.msle, ref_msle, {}),
  ("mape", jl.mape, ref_mape, {}),
  ("mape", jl.mape, ref_mape, {"eps": 0.5}),
  ("poisson_nll", jl.poisson_nll, ref_poisson_nll, {}),
  ("poisson_nll", jl.poisson_nll, ref_poisson_nll, {"full": True}),
]


@pytest.mark.parametrize("name, fn, ref, options", ELEMENTWISE, ids=lambda x: str(x) if isinstance(x, dict) else None)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_matches_numpy_reference(name, fn, ref, options, shape, reduction):
  rng = _rng(len(shape))
  p, t = _inputs(name, shape, rng)
  weights = rng.uniform(0.5, 2.0, shape[-1:])
  where = rng.uniform(size=shape) < 0.8
  with jax.enable_x64(True):
    out = fn(jnp.asarray(p), jnp.asarray(t), reduction=reduction, weights=weights, where=where, **options)
    plain = fn(jnp.asarray(p), jnp.asarray(t), reduction=reduction, **options)
  np.testing.assert_allclose(out, _reduce(ref(p, t, **options), reduction, weights, where), rtol=1e-12)
  np.testing.assert_allclose(plain, _reduce(ref(p, t, **options), reduction), rtol=1e-12)


@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gaussian_nll_matches_numpy_reference(full, reduction):
  rng = _rng(1)
  p, t, v = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), rng.uniform(0.1, 2.0, (4, 3))
  v[0, 0] = 1e-9  # below eps: floored
  with jax.enable_x64(True):
    out = jl.gaussian_nll(jnp.asarray(p), jnp.asarray(t), jnp.asarray(v), full=full, reduction=reduction)
  np.testing.assert_allclose(out, _reduce(ref_gaussian_nll(p, t, v, full), reduction), rtol=1e-12)


@pytest.mark.parametrize("axis", [None, -1, 0, (0, 2)])
def test_rmse_matches_numpy_reference(axis):
  rng = _rng(2)
  p, t = rng.normal(size=(3, 4, 5)), rng.normal(size=(3, 4, 5))
  w = rng.uniform(0.5, 2.0, (3, 4, 5))
  m = rng.uniform(size=(3, 4, 5)) < 0.7
  ref_axis = tuple(range(3)) if axis is None else axis
  expected = np.sqrt(np.sum(w * m * (p - t) ** 2, axis=ref_axis) / np.sum(w * m, axis=ref_axis))
  with jax.enable_x64(True):
    out = jl.rmse(jnp.asarray(p), jnp.asarray(t), axis=axis, weights=w, where=m, reduction="none")
    mean = jl.rmse(jnp.asarray(p), jnp.asarray(t), axis=axis, weights=w, where=m)
  np.testing.assert_allclose(out, expected, rtol=1e-12)
  np.testing.assert_allclose(mean, np.mean(expected), rtol=1e-12)


@pytest.mark.parametrize("shape, axis", [((0, 2), None), ((0, 2), -1), ((3, 0), -1)])
def test_rmse_of_empty_examples_is_zero(shape, axis):
  """An empty example has RMSE 0 as an all-masked one (not NaN, not a trace-time error from the scaled branch)."""
  p = jnp.ones(shape)
  value, grad = jax.value_and_grad(lambda p: jl.rmse(p, jnp.zeros(shape), axis=axis))(p)
  assert float(value) == 0.0 and grad.shape == shape
  per_example = jl.rmse(p, jnp.zeros(shape), axis=axis, reduction="none")
  np.testing.assert_array_equal(per_example, np.zeros(per_example.shape))
  tangent = jax.jvp(lambda p: jl.rmse(p, jnp.zeros(shape), axis=axis, reduction="none"), (p,), (p,))[1]
  np.testing.assert_array_equal(tangent, np.zeros(per_example.shape))


def test_rmse_mean_skips_fully_masked_examples():
  p = jnp.array([[3.0, 4.0], [1.0, 1.0], [0.0, 2.0]])
  where = jnp.array([[True, True], [False, False], [True, True]])
  per_example = jl.rmse(p, jnp.zeros_like(p), axis=-1, where=where, reduction="none")
  np.testing.assert_allclose(per_example, [np.sqrt(12.5), 0.0, np.sqrt(2.0)], rtol=1e-6)
  np.testing.assert_allclose(
    jl.rmse(p, jnp.zeros_like(p), axis=-1, where=where), (np.sqrt(12.5) + np.sqrt(2.0)) / 2, rtol=1e-6
  )


# torch.nn.functional parity in float64: values and gradients, all reductions.
def _torch_value_and_grads(torch_fn, arrays, reduction, **options):
  tensors = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
  out = torch_fn(*tensors, reduction=reduction, **options)
  out.sum().backward()
  return out.detach().numpy(), [x.grad.numpy() for x in tensors]


def _jax_value_and_grads(jl_fn, arrays, reduction, **options):
  with jax.enable_x64(True):
    args = [jnp.asarray(a) for a in arrays]
    value = jl_fn(*args, reduction=reduction, **options)
    grads = jax.grad(lambda *a: jnp.sum(jl_fn(*a, reduction=reduction, **options)), argnums=tuple(range(len(args))))
    return np.asarray(value), [np.asarray(g) for g in grads(*args)]


TORCH_PAIRS = [
  (jl.mse, F.mse_loss, {}, {}),
  (jl.mae, F.l1_loss, {}, {}),
  (jl.huber, F.huber_loss, {}, {}),
  (jl.huber, F.huber_loss, {"delta": 0.3}, {"delta": 0.3}),
  (jl.smooth_l1, F.smooth_l1_loss, {}, {}),
  (jl.smooth_l1, F.smooth_l1_loss, {"beta": 2.5}, {"beta": 2.5}),
  (jl.smooth_l1, F.smooth_l1_loss, {"beta": 0.0}, {"beta": 0.0}),
]


@pytest.mark.parametrize("jl_fn, torch_fn, jl_options, torch_options", TORCH_PAIRS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_matches_torch(jl_fn, torch_fn, jl_options, torch_options, shape, reduction):
  rng = _rng(3)
  arrays = [rng.normal(size=shape) * 2, rng.normal(size=shape) * 2]
  value, grads = _jax_value_and_grads(jl_fn, arrays, reduction, **jl_options)
  t_value, t_grads = _torch_value_and_grads(torch_fn, arrays, reduction, **torch_options)
  np.testing.assert_allclose(value, t_value, rtol=1e-6, atol=1e-12)
  for g, tg in zip(grads, t_grads, strict=True):
    np.testing.assert_allclose(g, tg, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("log_input", [True, False])
@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_poisson_nll_matches_torch(log_input, full, reduction):
  rng = _rng(4)
  p = rng.normal(size=(4, 5)) if log_input else rng.uniform(0.1, 3.0, (4, 5))
  u = rng.uniform(0, 4, (4, 5))
  t = np.where(u < 0.6, u, u + 0.8)  # real-valued counts away from the Stirling switch at 1
  arrays = [p, t]
  value, grads = _jax_value_and_grads(jl.poisson_nll, arrays, reduction, log_input=log_input, full=full)
  t_value, t_grads = _torch_value_and_grads(F.poisson_nll_loss, arrays, reduction, log_input=log_input, full=full)
  np.testing.assert_allclose(value, t_value, rtol=1e-6, atol=1e-12)
  for g, tg in zip(grads, t_grads, strict=True):
    np.testing.assert_allclose(g, tg, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("variance_shape", [(4, 3), (4, 1), (4,)], ids=str)
@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gaussian_nll_matches_torch(variance_shape, full, reduction):
  rng = _rng(5)
  v = rng.uniform(0.1, 2.0, variance_shape)
  v.flat[0] = 1e-8  # below eps: torch clamps outside autograd, and so does jaxloss
  arrays = [rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), v]
  value, grads = _jax_value_and_grads(jl.gaussian_nll, arrays, reduction, full=full)
  t_value, t_grads = _torch_value_and_grads(F.gaussian_nll_loss, arrays, reduction, full=full)
  np.testing.assert_allclose(value, t_value, rtol=1e-6, atol=1e-12)
  for g, tg in zip(grads, t_grads, strict=True):
    np.testing.assert_allclose(g, tg, rtol=1e-6, atol=1e-12)


# Exact subgradients at the kinks, in reverse and forward mode.
def _grad_and_jvp(f, x):
  g = jax.grad(lambda x: jnp.sum(f(x)))(x)
  _, tangent = jax.jvp(f, (x,), (jnp.ones_like(x),))
  return np.asarray(g), np.asarray(tangent)


KINKS = {
  "mae": lambda p, t: jl.mae(p, t, reduction="none"),
  "smooth_l1(beta=0)": lambda p, t: jl.smooth_l1(p, t, beta=0.0, reduction="none"),
  "quantile(q=0.5)": lambda p, t: jl.quantile(p, t, reduction="none"),
  "quantile(q=0.2)": lambda p, t: jl.quantile(p, t, q=0.2, reduction="none"),
  "quantile(q=1)": lambda p, t: jl.quantile(p, t, q=1.0, reduction="none"),
  "mape": lambda p, t: jl.mape(p, t, reduction="none"),
  "rmse": lambda p, t: jl.rmse(p, t),
  "rmse(axis=-1)": lambda p, t: jl.rmse(p, t, axis=-1, reduction="none"),
  "rmse(weights, where)": lambda p, t: jl.rmse(p, t, weights=jnp.arange(4.0), where=jnp.arange(4) > 0),
}


@pytest.mark.parametrize("name", KINKS)
def test_gradient_is_exactly_zero_at_the_kink(name):
  x = jnp.asarray(_rng(6).normal(size=(3, 4)), jnp.float32)
  g, tangent = _grad_and_jvp(lambda p: KINKS[name](p, x), x)
  assert np.all(g == 0), g
  assert np.all(tangent == 0), tangent
  assert np.all(np.asarray(jax.hessian(lambda p: jnp.sum(KINKS[name](p, x)))(x)) == 0)


def test_subgradient_convention_differs_from_jnp():
  # The measured facts the convention exists for.
  assert float(jax.grad(jnp.abs)(0.0)) == 1.0
  assert float(jax.grad(lambda x: jnp.sqrt(jnp.mean(x**2)))(0.0)) != 0.0  # NaN
  assert float(jax.grad(jl.mae)(jnp.zeros(1), jnp.zeros(1))[0]) == 0.0


def test_quantile_one_sided_slopes():
  p = jnp.array([0.0, 2.0])
  g = jax.grad(lambda p: jl.quantile(p, jnp.ones(2), q=0.3, reduction="sum"))(p)
  np.testing.assert_allclose(g, [-0.3, 0.7], rtol=1e-6)


def test_huber_gradient_is_clipped_error_and_continuous_at_delta():
  e = jnp.array([-3.0, -0.5, -0.3, 0.0, 0.3, 0.5, 3.0])
  g = jax.grad(lambda p: jl.huber(p, jnp.zeros(7), delta=0.5, reduction="sum"))(e)
  np.testing.assert_array_equal(g, np.clip(np.asarray(e), -0.5, 0.5))


def test_smooth_l1_beta_zero_is_mae_exactly():
  rng = _rng(7)
  p, t = jnp.asarray(rng.normal(size=50), jnp.float32), jnp.asarray(rng.normal(size=50), jnp.float32)
  p = p.at[:5].set(t[:5])
  np.testing.assert_array_equal(jl.smooth_l1(p, t, beta=0.0, reduction="none"), jl.mae(p, t, reduction="none"))
  np.testing.assert_array_equal(
    jax.grad(lambda p: jl.smooth_l1(p, t, beta=0.0))(p), jax.grad(lambda p: jl.mae(p, t))(p)
  )


def test_log_cosh_is_accurate_near_zero_and_stable_far_out():
  e = np.array([1e-6, 1e-4, 1e-2, 0.5, 3.0, 50.0, 1e4], np.float32)
  x = e.astype(np.float64)
  with np.errstate(over="ignore"):
    # Taylor series where log(cosh(x)) cancels even in float64; |x| - log 2 where cosh overflows.
    expected = np.where(np.abs(x) < 20, np.log(np.cosh(x)), np.abs(x) - np.log(2.0))
    expected = np.where(np.abs(x) < 1e-3, x**2 / 2 - x**4 / 12, expected)
  out = jl.log_cosh(jnp.asarray(e), jnp.zeros(7), reduction="none")
  np.testing.assert_allclose(out, expected, rtol=2e-6)
  g = jax.grad(lambda p: jl.log_cosh(p, jnp.zeros(7), reduction="sum"))(jnp.asarray(e))
  np.testing.assert_allclose(g, np.tanh(e), rtol=1e-6)
  hessian = jax.hessian(lambda p: jl.log_cosh(p, jnp.zeros(1)))(jnp.zeros(1))
  np.testing.assert_allclose(hessian, [[1.0]])


def test_gaussian_nll_variance_gradient_is_straight_through_below_eps():
  p, t = jnp.ones(2), jnp.zeros(2)
  g = jax.grad(lambda v: jl.gaussian_nll(p, t, v, eps=0.5, reduction="sum"))(jnp.array([0.1, 0.5]))
  # d/dv 0.5 (log v + 1/v) at v = eps = 0.5 for both entries.
  np.testing.assert_allclose(g, [0.5 * (1 / 0.5 - 1 / 0.25)] * 2, rtol=1e-6)


def test_poisson_full_target_gradient_is_finite_at_zero():
  g = jax.grad(lambda t: jl.poisson_nll(jnp.zeros(3), t, full=True, reduction="sum"))(jnp.array([0.0, 1.0, 3.0]))
  assert np.all(np.isfinite(g))


def test_mape_floor_takes_over_at_the_tie():
  # |t| == eps: the derivative of max(|t|, eps) is 0 in t and 1 in eps (the floor's side), for a traced eps.
  p, t = jnp.array([2.0, 2.0, 2.0]), jnp.array([0.5, -0.5, 1.0])
  gt, geps = jax.grad(lambda t, e: jl.mape(p, t, eps=e, reduction="sum"), argnums=(0, 1))(t, jnp.float32(0.5))
  np.testing.assert_allclose(gt, [-1 / 0.5, -1 / 0.5, -1 / 1.0 - 1 / 1.0], rtol=1e-6)
  np.testing.assert_allclose(geps, -1.5 / 0.25 - 2.5 / 0.25, rtol=1e-6)
