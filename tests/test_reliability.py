"""Reproducers of inputs that once gave a silent wrong number or a crash, one test per protection.

Each test is named after what it protects; the family modules' own tests hold
the family-specific ones (out-of-range labels of ``linear_cross_entropy``,
``kl_divergence``'s NaN targets, ``sigmoid_focal``'s target derivative, ...).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxloss as jl

E0 = jnp.zeros(0)


@pytest.mark.parametrize(
  "call",
  [
    lambda: jl.msle(E0, E0),
    lambda: jl.poisson_nll(E0, E0),
    lambda: jl.poisson_nll(E0, E0, log_input=False),
    lambda: jl.gaussian_nll(E0, E0, E0),
    lambda: jl.mse(E0, E0, weights=E0),
    lambda: jl.rmse(jnp.zeros((0, 3)), jnp.zeros((0, 3)), axis=-1),
  ],
)
def test_empty_batch_has_mean_zero(call):
  assert float(call()) == 0.0


def test_nan_weight_under_false_where_stays_out():
  value = jl.mse(jnp.ones(2), jnp.zeros(2), weights=jnp.array([1.0, jnp.nan]), where=jnp.array([True, False]))
  assert float(value) == 1.0
  grad = jax.grad(lambda p: jl.mse(p, jnp.zeros(2), weights=jnp.array([1.0, jnp.nan]), where=jnp.array([True, False])))
  np.testing.assert_array_equal(np.asarray(grad(jnp.ones(2))), [2.0, 0.0])
  none = jl.mse(
    jnp.ones(2), jnp.zeros(2), weights=jnp.array([1.0, jnp.inf]), where=jnp.array([True, False]), reduction="none"
  )
  np.testing.assert_array_equal(np.asarray(none), [1.0, 0.0])


@pytest.mark.parametrize("where", [jnp.array([0.1, 0.0]), jnp.array([1, 0]), [1.0, 0.0]])
def test_a_non_boolean_where_is_an_error_not_a_cast(where):
  with pytest.raises(TypeError, match=r"jaxloss\.mse: `where` must be a boolean mask, got dtype"):
    jl.mse(jnp.array([1.0, 2.0]), jnp.zeros(2), where=where)


def test_python_lists_are_arrays():
  assert float(jl.mse([1.0, 2.0], [0.0, 0.0])) == 2.5
  assert float(jl.mse(jnp.array([1.0, 2.0]), jnp.zeros(2), where=[True, False])) == 1.0
  np.testing.assert_allclose(float(jl.huber([0.5, 3.0], [0.0, 0.0], weights=[1.0, 0.0])), 0.125)


@pytest.mark.parametrize(
  "call, pattern",
  [
    (lambda: jl.huber(jnp.ones(2), jnp.ones(2), delta=float("nan")), r"`delta` must be a positive number, got nan"),
    (lambda: jl.smooth_l1(jnp.ones(2), jnp.ones(2), beta=float("inf")), r"`beta` must be .* \(and finite\), got inf"),
    (lambda: jl.quantile(jnp.ones(2), jnp.ones(2), q=float("nan")), r"`q` must be in \[0, 1\], got nan"),
    (lambda: jl.mape(jnp.ones(2), jnp.ones(2), eps=float("inf")), r"`eps` must be .* \(and finite\), got inf"),
    (lambda: jl.gaussian_nll(jnp.ones(2), jnp.ones(2), jnp.ones(2), eps=float("nan")), r"`eps` must be"),
    (lambda: jl.poisson_nll(jnp.ones(2), jnp.ones(2), eps=float("inf")), r"`eps` must be"),
  ],
)
def test_nan_and_meaningless_infinite_options_are_errors(call, pattern):
  with pytest.raises(ValueError, match=pattern):
    call()


def test_infinite_huber_delta_is_half_the_squared_error():
  p, t = jnp.array([0.5, -3.0, 100.0]), jnp.zeros(3)
  np.testing.assert_array_equal(
    np.asarray(jl.huber(p, t, delta=float("inf"), reduction="none")), 0.5 * np.asarray(p) ** 2
  )
  np.testing.assert_allclose(np.asarray(jax.grad(jl.huber)(p, t, delta=float("inf"))), np.asarray(p) / 3, rtol=1e-6)
  traced = jax.grad(lambda p, d: jl.huber(p, t, delta=d), argnums=(0, 1))(p, jnp.float32(jnp.inf))
  np.testing.assert_allclose(np.asarray(traced[0]), np.asarray(p) / 3, rtol=1e-6)
  assert float(traced[1]) == 0.0


@pytest.mark.parametrize(
  "call, option",
  [
    (lambda: jl.poisson_nll(jnp.ones(2), jnp.ones(2), log_input="no"), "log_input"),
    (lambda: jl.poisson_nll(jnp.ones(2), jnp.ones(2), full="no"), "full"),
    (lambda: jl.gaussian_nll(jnp.ones(2), jnp.ones(2), jnp.ones(2), full="no"), "full"),
    (lambda: jl.gaussian_nll(jnp.ones(2), jnp.ones(2), jnp.ones(2), full=1), "full"),
  ],
)
def test_a_string_is_not_a_bool_flag(call, option):
  with pytest.raises(TypeError, match=rf"`{option}` must be a bool, got"):
    call()


def test_gaussian_nll_does_not_overflow_where_the_value_fits():
  args = (jnp.array([1e30]), jnp.array([-1e30]), jnp.array([1e30]))
  value = float(jl.gaussian_nll(*args))
  np.testing.assert_allclose(value, 0.5 * (np.log(1e30) + 4e30), rtol=1e-6)
  d_p, d_v = jax.grad(jl.gaussian_nll, argnums=(0, 2))(*args)
  np.testing.assert_allclose(np.asarray(d_p), [2.0], rtol=1e-6)  # e / v
  np.testing.assert_allclose(np.asarray(d_v), [0.5 / 1e30 - 2.0], rtol=1e-6)  # (1 / v - e**2 / v**2) / 2


@pytest.mark.parametrize("size", [1e20, 1e30, 1e-30])
def test_rmse_scales_before_squaring(size):
  x = jnp.full(5, size)
  np.testing.assert_allclose(float(jl.rmse(x, jnp.zeros(5))), size, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(jax.grad(jl.rmse)(x, jnp.zeros(5))), np.full(5, 0.2), rtol=1e-6)
  rows = jnp.array([[size, 0.0], [3.0, 4.0]])
  per_row = jl.rmse(rows, jnp.zeros((2, 2)), axis=-1, reduction="none")
  np.testing.assert_allclose(np.asarray(per_row), [size / np.sqrt(2), np.sqrt(12.5)], rtol=1e-6)


def test_rmse_gradient_with_respect_to_weights_matches_finite_differences():
  with jax.enable_x64(True):
    p, w = jnp.array([1.0, -2.0, 3.0]), jnp.array([1.0, 2.0, 0.5])
    f = lambda w: jl.rmse(p, jnp.zeros(3), weights=w)
    step = jnp.array([1e-6, 0.0, 0.0])
    np.testing.assert_allclose(float(jax.grad(f)(w)[0]), float((f(w + step) - f(w - step)) / 2e-6), rtol=1e-6)


@pytest.mark.parametrize(
  "axis, pattern", [(1.5, r"`axis` must be None, an int or a tuple of ints, got 1\.5"), ("0", r"`axis`")]
)
def test_bad_structural_options_name_the_loss_and_option(axis, pattern):
  with pytest.raises(TypeError, match=r"jaxloss\.rmse: " + pattern):
    jl.rmse(jnp.ones((2, 2)), jnp.ones((2, 2)), axis=axis)


@pytest.mark.parametrize("variance_shape", [(1, 3), (4, 1), (4,), ()])
def test_gaussian_nll_accepts_the_variance_shapes_torch_accepts(variance_shape):
  rng = np.random.default_rng(0)
  p, t = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
  v = rng.uniform(0.5, 2.0, size=variance_shape)
  with jax.enable_x64(True):
    ours = jl.gaussian_nll(jnp.asarray(p), jnp.asarray(t), jnp.asarray(v), reduction="none")
  var = float(v) if variance_shape == () else torch.from_numpy(v)
  theirs = torch.nn.functional.gaussian_nll_loss(torch.from_numpy(p), torch.from_numpy(t), var, reduction="none")
  np.testing.assert_allclose(np.asarray(ours), theirs.numpy(), rtol=1e-12)


def test_gaussian_nll_variance_with_two_mismatched_axes_is_an_error():
  with pytest.raises(ValueError, match=r"`variance` must have the shape of `predictions` \(4, 3, 2\)"):
    jl.gaussian_nll(jnp.zeros((4, 3, 2)), jnp.zeros((4, 3, 2)), jnp.ones((1, 1, 2)))


# Half-precision gradients have the input's dtype: float16 rounds the float32 gradient (overflowing to
# inf beyond 65504, never clipped), bfloat16 keeps float32's range.
HALF_GRADIENTS = [
  (jl.binary_cross_entropy, (np.array([0.0, 1.0, 0.3]), np.array([1.0, 0.0, 1.0]))),
  (jl.mape, (np.array([1.0, 2.0, 3.0]), np.array([1e-6, 0.0, 2.0]))),
  (jl.gaussian_nll, (np.array([0.0, 1.0]), np.array([300.0, 1.0]), np.array([1e-3, 1.0]))),
  (jl.squared_hinge, (np.array([-4e4, 0.5]), np.array([1.0, 1.0]))),
]


@pytest.mark.parametrize("loss, args", HALF_GRADIENTS, ids=lambda x: getattr(x, "__name__", None))
def test_half_precision_gradients_are_the_float32_gradient_in_the_input_dtype(loss, args):
  reference = np.asarray(jax.grad(loss)(*(jnp.asarray(a, jnp.float32) for a in args)))
  for dtype in (jnp.float16, jnp.bfloat16):
    half = tuple(jnp.asarray(a, dtype) for a in args)
    upcast = tuple(h.astype(jnp.float32) for h in half)
    grad = jax.grad(loss)(*half)
    assert grad.dtype == dtype
    with np.errstate(over="ignore"):  # float16 overflows to inf: the documented result
      np.testing.assert_array_equal(np.asarray(grad), np.asarray(jax.grad(loss)(*upcast)).astype(dtype))
  assert np.all(np.isfinite(np.asarray(jax.grad(loss)(*(jnp.asarray(a, jnp.bfloat16) for a in args)))))
  assert np.all(np.isfinite(reference))
