"""Divergences: values against NumPy float64 references, values and gradients against torch
(``kl_div``, and the Jensen-Shannon formula written in torch) in float64 for all reductions with
weights and masks, the edges (zero probabilities, -inf log-probabilities), errors and checked mode."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F
from jax.experimental import checkify

import jaxloss as jl

C = 5


def _rng(seed=0):
  return np.random.default_rng(seed)


def _log_softmax(x, axis=-1):
  m = np.max(x, axis=axis, keepdims=True)
  return x - m - np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))


def np_kl(log_q, p, axis=-1):
  with np.errstate(divide="ignore", invalid="ignore"):
    terms = np.where(p > 0, p * (np.log(p) - log_q), 0.0)
  return terms.sum(axis)


def np_js(log_p, log_q, axis=-1):
  p, q = np.exp(log_p), np.exp(log_q)
  m = (p + q) / 2
  with np.errstate(divide="ignore", invalid="ignore"):
    kl_pm = np.where(p > 0, p * (np.log(p) - np.log(m)), 0.0)
    kl_qm = np.where(q > 0, q * (np.log(q) - np.log(m)), 0.0)
  return 0.5 * (kl_pm + kl_qm).sum(axis)


def torch_js(log_p, log_q, axis=-1):
  log_m = torch.logaddexp(log_p, log_q) - np.log(2.0)
  return 0.5 * (F.kl_div(log_m, log_p, log_target=True, reduction="none").sum(axis)) + 0.5 * (
    F.kl_div(log_m, log_q, log_target=True, reduction="none").sum(axis)
  )


def _reduce(per_example, reduction, weights, where, lib):
  wl = lib.where(where, weights * per_example, 0.0)
  if reduction == "none":
    return wl
  if reduction == "sum":
    return wl.sum()
  return wl.sum() / lib.where(where, weights, 0.0).sum()


def _jax_runs(fn, runs, **static):
  """Value and gradients (of the sum, for both arrays) of every ``(arrays, reduction, options)`` run, one compile."""

  def all_runs(inputs):
    out = []
    for (a, b, options), (_, reduction, _) in zip(inputs, runs, strict=True):

      def total(a, b, options=options, reduction=reduction):
        value = fn(a, b, reduction=reduction, **static, **options)
        return jnp.sum(value), value

      (_, value), grads = jax.value_and_grad(total, argnums=(0, 1), has_aux=True)(a, b)
      out.append((value, grads))
    return out

  with jax.enable_x64(True):
    inputs = [(jnp.asarray(a), jnp.asarray(b), {k: jnp.asarray(v) for k, v in o.items()}) for (a, b), _, o in runs]
    return jax.jit(all_runs)(inputs)


def _torch_value_and_grads(fn, arrays, reduce):
  tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
  out = reduce(fn(*tensors))
  out.sum().backward()
  return out.detach().numpy(), [t.grad.numpy() for t in tensors]


def _kl_inputs(rng, shape):
  return _log_softmax(rng.normal(size=shape) * 2), np.exp(_log_softmax(rng.normal(size=shape)))


def _kl_log_inputs(rng, shape):
  return _log_softmax(rng.normal(size=shape) * 2), _log_softmax(rng.normal(size=shape))


SPECS = {
  "kl_divergence": (
    jl.kl_divergence,
    {},
    _kl_inputs,
    np_kl,
    lambda a, b: F.kl_div(a, b, reduction="none").sum(-1),
  ),
  "kl_divergence-log_targets": (
    jl.kl_divergence,
    {"log_targets": True},
    _kl_log_inputs,
    lambda a, b: np_kl(a, np.exp(b)),
    lambda a, b: F.kl_div(a, b, log_target=True, reduction="none").sum(-1),
  ),
  "js_divergence": (jl.js_divergence, {}, _kl_log_inputs, np_js, torch_js),
}


@pytest.mark.parametrize("name", SPECS)
def test_matches_torch_and_numpy(name):
  fn, static, make, numpy_ref, torch_ref = SPECS[name]
  rng = _rng(len(name))
  arrays = make(rng, (2, 3, C))
  weights = rng.uniform(0.5, 2.0, (2, 3))
  where = rng.uniform(size=(2, 3)) < 0.75
  runs = [(arrays, r, {"weights": weights, "where": where}) for r in ("mean", "sum", "none")]
  for (inputs, reduction, _), (value, grads) in zip(runs, _jax_runs(fn, runs, **static), strict=True):
    np.testing.assert_allclose(
      value, _reduce(numpy_ref(*inputs), reduction, weights, where, np), rtol=1e-10, atol=1e-14
    )

    def reduce(per_example, reduction=reduction):
      return _reduce(per_example, reduction, torch.tensor(weights), torch.tensor(where), torch)

    t_value, t_grads = _torch_value_and_grads(torch_ref, inputs, reduce)
    np.testing.assert_allclose(value, t_value, rtol=1e-6, atol=1e-12)
    for g, tg in zip(grads, t_grads, strict=True):
      np.testing.assert_allclose(g, tg, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("log_targets", [False, True])
def test_kl_mean_is_torch_batchmean(log_targets):
  rng = _rng(1)
  log_q, p = (_kl_log_inputs if log_targets else _kl_inputs)(rng, (6, C))
  with jax.enable_x64(True):
    value = jl.kl_divergence(jnp.asarray(log_q), jnp.asarray(p), log_targets=log_targets)
  expected = F.kl_div(torch.tensor(log_q), torch.tensor(p), reduction="batchmean", log_target=log_targets)
  np.testing.assert_allclose(value, expected.numpy(), rtol=1e-12)
  with jax.enable_x64(True):
    optax_kl = (optax.losses.kl_divergence_with_log_targets if log_targets else optax.losses.kl_divergence)(
      jnp.asarray(log_q), jnp.asarray(p)
    )
  np.testing.assert_allclose(value, np.mean(np.asarray(optax_kl)), rtol=1e-12)


def test_any_axis():
  rng = _rng(2)
  log_q, p = _kl_inputs(rng, (2, 3, C))
  log_p = _log_softmax(rng.normal(size=(2, 3, C)))
  moved = [np.moveaxis(a, -1, 1) for a in (log_q, p, log_p)]
  with jax.enable_x64(True):
    for fn, a, b, ma, mb in [
      (jl.kl_divergence, log_q, p, moved[0], moved[1]),
      (jl.js_divergence, log_p, log_q, moved[2], moved[0]),
    ]:
      expected = fn(jnp.asarray(a), jnp.asarray(b), reduction="none")
      np.testing.assert_allclose(fn(jnp.asarray(ma), jnp.asarray(mb), axis=1, reduction="none"), expected, rtol=1e-14)
      np.testing.assert_allclose(fn(jnp.asarray(ma), jnp.asarray(mb), axis=-2, reduction="none"), expected, rtol=1e-14)


def _all_derivatives(f, a, b):
  """Value, gradients in both arguments, a forward-mode tangent and the Hessian in both, one compile."""

  def run(a, b):
    total = lambda a, b: jnp.sum(f(a, b))
    tangent = jax.jvp(total, (a, b), (jnp.ones_like(a), jnp.ones_like(b)))[1]
    return f(a, b), jax.grad(total, argnums=(0, 1))(a, b), tangent, jax.hessian(total, argnums=(0, 1))(a, b)

  return jax.jit(run)(a, b)


def _finite(tree):
  for leaf in jax.tree.leaves(tree):
    assert np.all(np.isfinite(np.asarray(leaf))), leaf


def test_kl_edges_zero_targets_and_minus_infinity():
  log_q = jnp.log(jnp.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [1.0, 0.0, 0.0]]))
  p = jnp.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])
  value, (g_log_q, g_p), tangent, hessian = _all_derivatives(
    lambda a, b: jl.kl_divergence(a, b, reduction="none"), log_q, p
  )
  _finite((value, g_log_q, g_p, tangent, hessian))
  np.testing.assert_allclose(value, [0.0, 0.5 * np.log(0.5 / 0.3), 0.0], atol=1e-6)
  np.testing.assert_array_equal(np.asarray(g_log_q), -np.asarray(p))  # -p, and exactly 0 where p = 0
  assert np.all(np.asarray(g_p)[np.asarray(p) == 0] == 0)  # the one-sided derivative is -inf: 0, never NaN
  # p > 0 where q = 0: an infinite divergence, with the finite gradient -p for log q.
  inf_value, (g, _), _, _ = _all_derivatives(
    lambda a, b: jl.kl_divergence(a, b, reduction="none"), log_q[:1], jnp.array([[0.5, 0.0, 0.5]])
  )
  assert float(inf_value[0]) == np.inf
  np.testing.assert_array_equal(g, [[-0.5, 0.0, -0.5]])
  # Log targets: -inf log p contributes exactly 0.
  value, grads, _, hessian = _all_derivatives(
    lambda a, b: jl.kl_divergence(a, b, log_targets=True, reduction="none"), log_q, jnp.log(p)
  )
  _finite((value, grads, hessian))
  np.testing.assert_allclose(value, [0.0, 0.5 * np.log(0.5 / 0.3), 0.0], atol=1e-6)


def test_kl_nan_and_negative_targets_give_nan_as_torch():
  """A NaN or negative target (a NaN log-target) is never a silently dropped class: NaN, as torch's kl_div.
  p = 0 stays exactly 0 with a zero gradient (torch agrees on the value where log q is finite)."""
  log_q = np.log(np.array([[0.5, 0.5], [0.5, 0.5], [0.25, 0.75], [0.5, 0.5]]))
  p = np.array([[np.nan, 0.5], [-0.25, 0.5], [0.0, 1.0], [0.5, 0.5]])
  log_p = np.log(np.array([[0.5, 0.5], [0.5, 0.5], [1e-300, 1.0], [0.5, 0.5]]))  # torch: exp(-inf) * -inf = NaN
  log_p[0, 0] = np.nan
  for target, log_target in [(p, False), (log_p, True)]:
    ((value, grads),) = _jax_runs(jl.kl_divergence, [((log_q, target), "none", {})], log_targets=log_target)
    torch_kl = lambda a, b, log_target=log_target: F.kl_div(a, b, reduction="none", log_target=log_target).sum(-1)
    t_value, t_grads = _torch_value_and_grads(torch_kl, (log_q, target), lambda x: x)
    np.testing.assert_allclose(value, t_value, rtol=1e-12)  # NaN exactly where torch has NaN
    np.testing.assert_allclose(grads[0], t_grads[0], rtol=1e-12)
    assert np.isnan(value[0]) and np.all(np.isfinite(value[2:]))
    assert np.isnan(value[1]) != log_target  # a negative target; its log-space row is valid
    if not log_target:
      np.testing.assert_array_equal(grads[1][2, 0], 0.0)  # p = 0: a zero gradient (torch: -inf)
  # An exactly -inf log-target (p = 0) gives 0 here (torch: NaN).
  value = jl.kl_divergence(jnp.asarray(log_q[2]), jnp.log(jnp.array([0.0, 1.0])), log_targets=True)
  np.testing.assert_allclose(value, np.log(1 / 0.75), rtol=1e-6)


def test_kl_log_targets_flag_must_be_a_bool():
  with pytest.raises(TypeError, match=r"jaxloss\.kl_divergence: `log_targets` must be a bool, got 'no'"):
    jl.kl_divergence(X, X, log_targets="no")


def test_empty_batches_have_mean_zero():
  """No examples (or distributions over no classes): 0 with a zero gradient, in one compiled program."""
  calls = [
    lambda a: jl.kl_divergence(a, jnp.exp(a)),
    lambda a: jl.kl_divergence(a, a, log_targets=True),
    lambda a: jl.js_divergence(a, a),
  ]
  for shape in [(0, 4), (3, 0)]:
    for value, grad in jax.jit(lambda a: [jax.value_and_grad(f)(a) for f in calls])(jnp.zeros(shape)):
      assert float(value) == 0.0 and not np.any(np.asarray(grad))


def test_js_is_symmetric_bounded_and_finite_everywhere():
  log = lambda p: jnp.log(jnp.array(p))
  log_p = log([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [0.0, 0.0, 1.0]])
  log_q = log([[0.0, 1.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.0, 1.0]])
  value, grads, tangent, hessian = _all_derivatives(lambda a, b: jl.js_divergence(a, b, reduction="none"), log_p, log_q)
  _finite((value, grads, tangent, hessian))
  with np.errstate(divide="ignore"):
    expected = np_js(np.log(np.asarray(np.exp(log_p), np.float64)), np.log(np.asarray(np.exp(log_q), np.float64)))
  np.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(value[0], np.log(2.0), rtol=1e-6)  # disjoint supports: the maximum, log 2
  assert float(value[1]) == 0.0 and float(value[3]) == 0.0
  np.testing.assert_array_equal(jl.js_divergence(log_q, log_p, reduction="none"), value)
  # A class absent from both distributions gets exactly zero gradient.
  for g in grads:
    np.testing.assert_array_equal(np.asarray(g)[1, 2], 0.0)
    np.testing.assert_array_equal(np.asarray(g)[3, :2], 0.0)
  with jax.enable_x64(True):
    rng = _rng(3)
    a, b = (jnp.asarray(_log_softmax(rng.normal(size=(50, C)) * 3)) for _ in range(2))
    out = np.asarray(jl.js_divergence(a, b, reduction="none"))
  assert np.all(out >= 0) and np.all(out <= np.log(2.0))


X = jnp.log(jnp.full((3, 4), 0.25))


@pytest.mark.parametrize(
  "call, error, pattern",
  [
    (
      lambda: jl.kl_divergence(X, jnp.ones((3, 5))),
      ValueError,
      r"jaxloss\.kl_divergence: `log_predictions` and `targets` must have the same shape",
    ),
    (lambda: jl.kl_divergence(jnp.zeros(()), jnp.zeros(())), ValueError, r"must have a distribution axis"),
    (lambda: jl.js_divergence(X, X, axis=-3), ValueError, r"`axis`=-3 is out of range for an array of rank 2"),
    (lambda: jl.js_divergence(X, jnp.zeros((3, 4), jnp.int32)), TypeError, r"`log_q` must be a floating-point array"),
    (
      lambda: jl.kl_divergence(X, jnp.zeros((3, 4), jnp.int32), log_targets=True),
      TypeError,
      r"`targets` must be a floating-point array",
    ),
    (lambda: jl.kl_divergence(X, X, weights=jnp.ones(4)), ValueError, r"`weights` must broadcast to the shape"),
  ],
)
def test_bad_input_fails_at_trace_time(call, error, pattern):
  with pytest.raises(error, match=pattern):
    call()


@pytest.mark.parametrize(
  "call, pattern",
  [
    (
      lambda c: c(jl.kl_divergence)(X, jnp.full((3, 4), 0.25).at[0, 0].set(1.5)),
      r"jaxloss\.kl_divergence: `targets` must be in \[0, 1\], found 1\.5",
    ),
    (
      lambda c: c(jl.kl_divergence)(X.at[1, 1].set(0.5), jnp.full((3, 4), 0.25)),
      r"`log_predictions` must be a log-probability, <= 0, found 0\.5",
    ),
    (lambda c: c(jl.kl_divergence)(X, X.at[2, 0].set(1.0), log_targets=True), r"`targets` must be a log-probability"),
    (lambda c: c(jl.js_divergence)(X, X.at[0, 0].set(2.0)), r"jaxloss\.js_divergence: `log_q` must be a log-prob"),
    (lambda c: c(jl.js_divergence)(X.at[0, 0].set(jnp.nan), X), r"jaxloss\.js_divergence: `log_p` contains NaN"),
  ],
)
def test_checked_reports_invalid_values(call, pattern):
  with pytest.raises(checkify.JaxRuntimeError, match=pattern):
    call(jl.checked)
  call(lambda f: f)
