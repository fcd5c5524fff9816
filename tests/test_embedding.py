"""Metric-learning losses: values and gradients against torch.nn.functional in float64, NumPy float64
references for contrastive and NT-Xent (and optax parity), exact gradients at kinks and where embeddings
coincide, trace-time errors and the checked mode."""

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
from jaxloss import _custom

REDUCTIONS = ["mean", "sum", "none"]


def _rng(seed=0):
  return np.random.default_rng(seed)


def _reduce(per_example, reduction, weights=None):
  """Reference reduction, written independently of jaxloss._reduce."""
  w = np.ones_like(per_example) if weights is None else np.broadcast_to(weights, per_example.shape)
  if reduction == "none":
    return w * per_example
  if reduction == "sum":
    return np.sum(w * per_example)
  return np.sum(w * per_example) / np.sum(w)


def _jax_value_and_grads(fn, arrays, n_diff, **options):
  """Value and gradients of ``sum(fn(...))`` with respect to the first ``n_diff`` arrays, in float64."""
  with jax.enable_x64(True):
    args = [jnp.asarray(a) for a in arrays]

    def total(*diff):
      return jnp.sum(fn(*diff, *args[n_diff:], **options))

    value = fn(*args, **options)
    grads = jax.grad(total, argnums=tuple(range(n_diff)))(*args[:n_diff])
    return np.asarray(value), [np.asarray(g) for g in grads]


def _torch_value_and_grads(fn, arrays, n_diff, flatten_to=None, **options):
  """torch's value (reshaped to ``flatten_to``'s batch) and gradients, float64."""
  tensors = [torch.tensor(a, dtype=torch.float64, requires_grad=i < n_diff) for i, a in enumerate(arrays)]
  if flatten_to is not None:
    inputs = [t.reshape(-1, *t.shape[len(flatten_to) :]) for t in tensors]
  else:
    inputs = tensors
  out = fn(*inputs, **options)
  if n_diff:
    out.sum().backward()
  value = out.detach().numpy()
  if flatten_to is not None and value.ndim:
    value = value.reshape(flatten_to)
  return value, [t.grad.numpy() for t in tensors[:n_diff]]


def _assert_parity(ours, theirs):
  (value, grads), (t_value, t_grads) = ours, theirs
  np.testing.assert_allclose(value, t_value, rtol=1e-6, atol=1e-12)
  for g, tg in zip(grads, t_grads, strict=True):
    np.testing.assert_allclose(g, tg, rtol=1e-6, atol=1e-12)


def _signs(rng, shape):
  return np.where(rng.uniform(size=shape) < 0.5, -1.0, 1.0)


# torch parity: values and gradients, every reduction, with and without weights.
@pytest.mark.parametrize("margin, batch", [(0.0, (6,)), (0.7, (2, 3))], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_margin_ranking_matches_torch(batch, reduction, margin):
  rng = _rng(1)
  arrays = [rng.normal(size=batch), rng.normal(size=batch), _signs(rng, batch)]
  ours = _jax_value_and_grads(jl.margin_ranking, arrays, 2, margin=margin, reduction=reduction)
  theirs = _torch_value_and_grads(F.margin_ranking_loss, arrays, 2, margin=margin, reduction=reduction)
  _assert_parity(ours, theirs)
  weights = rng.uniform(0.5, 2.0, batch)
  per_example = _torch_value_and_grads(F.margin_ranking_loss, arrays, 0, margin=margin, reduction="none")[0]
  with jax.enable_x64(True):
    weighted = jl.margin_ranking(*arrays, margin=margin, reduction=reduction, weights=weights)
  np.testing.assert_allclose(weighted, _reduce(per_example, reduction, weights), rtol=1e-12)


def _triplets(rng, batch, d=5):
  anchor = rng.normal(size=(*batch, d))
  return [anchor, anchor + 0.5 * rng.normal(size=(*batch, d)), rng.normal(size=(*batch, d))]


@pytest.mark.parametrize("swap, batch", [(False, (6,)), (True, (2, 3))], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_triplet_margin_matches_torch(batch, reduction, p, swap):
  rng = _rng(2)
  arrays = _triplets(rng, batch)
  options = {"margin": 1.5, "p": p, "swap": swap, "reduction": reduction}
  ours = _jax_value_and_grads(jl.triplet_margin, arrays, 3, **options)
  theirs = _torch_value_and_grads(F.triplet_margin_loss, arrays, 3, flatten_to=batch, **options)
  _assert_parity(ours, theirs)


def test_triplet_margin_weights_and_eps_match_torch():
  rng = _rng(3)
  arrays = _triplets(rng, (2, 3))
  weights = rng.uniform(0.5, 2.0, (2, 3))
  per_example = _torch_value_and_grads(F.triplet_margin_loss, arrays, 0, flatten_to=(2, 3), eps=0.1, reduction="none")[
    0
  ]
  with jax.enable_x64(True):
    for reduction in REDUCTIONS:
      out = jl.triplet_margin(*arrays, eps=0.1, reduction=reduction, weights=weights)
      np.testing.assert_allclose(out, _reduce(per_example, reduction, weights), rtol=1e-12)


def _jax_l1(x, y):
  return jnp.sum(jnp.abs(x - y), axis=-1)


def _torch_l1(x, y):
  return torch.sum(torch.abs(x - y), dim=-1)


def _jax_cosine_distance(x, y):
  return 1 - jnp.sum(x * y, axis=-1) / jnp.sqrt(jnp.sum(x * x, axis=-1) * jnp.sum(y * y, axis=-1))


def _torch_cosine_distance(x, y):
  return 1 - F.cosine_similarity(x, y, dim=-1, eps=0.0)


@pytest.mark.parametrize(
  "jax_distance, torch_distance, swap",
  [(None, None, True), (_jax_l1, _torch_l1, False), (_jax_cosine_distance, _torch_cosine_distance, True)],
  ids=["default-swap", "l1", "cosine-swap"],
)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_triplet_margin_distance_fn_matches_torch(jax_distance, torch_distance, swap, reduction):
  rng = _rng(4)
  arrays = _triplets(rng, (2, 3))
  margin = 0.5 if jax_distance is _jax_cosine_distance else 2.0
  ours = _jax_value_and_grads(
    jl.triplet_margin, arrays, 3, distance_fn=jax_distance, margin=margin, swap=swap, reduction=reduction
  )
  theirs = _torch_value_and_grads(
    F.triplet_margin_with_distance_loss,
    arrays,
    3,
    flatten_to=(2, 3),
    distance_function=torch_distance,
    margin=margin,
    swap=swap,
    reduction=reduction,
  )
  _assert_parity(ours, theirs)


@pytest.mark.parametrize("margin, batch", [(0.0, (6,)), (0.3, (2, 3)), (-0.4, (6,))], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cosine_embedding_matches_torch(batch, reduction, margin):
  rng = _rng(5)
  arrays = [rng.normal(size=(*batch, 4)), rng.normal(size=(*batch, 4)), _signs(rng, batch)]
  options = {"margin": margin, "reduction": reduction}
  ours = _jax_value_and_grads(jl.cosine_embedding, arrays, 2, **options)
  theirs = _torch_value_and_grads(F.cosine_embedding_loss, arrays, 2, flatten_to=batch, **options)
  _assert_parity(ours, theirs)
  weights = rng.uniform(0.5, 2.0, batch)
  with jax.enable_x64(True):
    weighted = jl.cosine_embedding(*arrays, margin=margin, reduction=reduction, weights=weights)
  per_example = _torch_value_and_grads(
    F.cosine_embedding_loss, arrays, 0, flatten_to=batch, margin=margin, reduction="none"
  )[0]
  np.testing.assert_allclose(weighted, _reduce(per_example, reduction, weights), rtol=1e-12)


def test_cosine_embedding_matches_torch_at_zero_vectors():
  # torch's 1e-12 inside the magnitudes is kept, so even a zero vector has torch's (large, finite) gradient.
  rng = _rng(6)
  x1, x2 = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
  x1[0] = 0.0
  x2[1] = 0.0
  x1[2] = x2[2] = 0.0
  arrays = [x1, x2, np.array([1.0, -1.0, 1.0, -1.0])]
  # A zero vector has cosine 0: with margin 0 a dissimilar pair would sit at the hinge's kink.
  ours = _jax_value_and_grads(jl.cosine_embedding, arrays, 2, margin=-0.5, reduction="sum")
  _assert_parity(ours, _torch_value_and_grads(F.cosine_embedding_loss, arrays, 2, margin=-0.5, reduction="sum"))
  assert all(np.all(np.isfinite(g)) for g in ours[1])


# NumPy float64 references.
def ref_contrastive(x1, x2, y, margin=1.0):
  d = np.sqrt(np.sum((x1 - x2) ** 2, axis=-1))
  return y * d**2 + (1 - y) * np.maximum(0.0, margin - d) ** 2


@pytest.mark.parametrize("margin, batch", [(1.0, (6,)), (3.0, (2, 3))], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_contrastive_matches_numpy_reference(batch, reduction, margin):
  rng = _rng(7)
  x1, x2 = rng.normal(size=(*batch, 3)), rng.normal(size=(*batch, 3))
  y = rng.integers(0, 2, size=batch).astype(float)
  weights = rng.uniform(0.5, 2.0, batch)
  with jax.enable_x64(True):
    out = jl.contrastive(x1, x2, y, margin=margin, reduction=reduction, weights=weights)
    grad = jax.grad(lambda a: jl.contrastive(a, x2, y, margin=margin, reduction="sum"))(jnp.asarray(x1))
  np.testing.assert_allclose(out, _reduce(ref_contrastive(x1, x2, y, margin), reduction, weights), rtol=1e-12)
  # d/dx1: 2 y (x1 - x2) - 2 (1 - y) max(0, m - d) (x1 - x2) / d.
  e = x1 - x2
  d = np.sqrt(np.sum(e**2, axis=-1, keepdims=True))
  expected = 2 * y[..., None] * e - 2 * (1 - y[..., None]) * np.maximum(0.0, margin - d) * e / d
  np.testing.assert_allclose(grad, expected, rtol=1e-10)


def ref_ntxent(e, labels, temperature):
  """Per-anchor NT-Xent by explicit loops over anchors and positives."""
  unit = e / np.maximum(np.linalg.norm(e, axis=-1, keepdims=True), np.finfo(np.float64).eps)
  s = unit @ unit.T / temperature
  out = np.zeros(len(e))
  for i in range(len(e)):
    positives = [j for j in range(len(e)) if j != i and labels[j] == labels[i]]
    negatives = [k for k in range(len(e)) if labels[k] != labels[i]]
    losses = [-s[i, j] + np.log(np.exp(s[i, j]) + sum(np.exp(s[i, k]) for k in negatives)) for j in positives]
    out[i] = np.mean(losses) if losses else 0.0
  return out


@pytest.mark.parametrize("labels", [[0, 0, 1, 1, 2, 2], [0, 0, 0, 1, 1, 2]], ids=["pairs", "uneven"])
@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_ntxent_matches_numpy_reference_and_optax(labels, temperature):
  rng = _rng(8)
  e = rng.normal(size=(6, 5))
  labels = np.array(labels)
  expected = ref_ntxent(e, labels, temperature)
  has_positive = np.array([np.sum(labels == label) > 1 for label in labels])
  positives = np.array([np.sum(labels == label) - 1 for label in labels], float)
  with jax.enable_x64(True):
    per_anchor = jl.ntxent(e, labels, temperature=temperature, reduction="none")
    mean = jl.ntxent(e, labels, temperature=temperature)
    per_pair_mean = jl.ntxent(e, labels, temperature=temperature, weights=positives)
    with jax.numpy_dtype_promotion("standard"):  # optax mixes bool and int
      peer = optax.losses.ntxent(jnp.asarray(e), jnp.asarray(labels), temperature)
  np.testing.assert_allclose(per_anchor, expected, rtol=1e-12)
  np.testing.assert_allclose(mean, np.mean(expected[has_positive]), rtol=1e-12)
  # optax averages over positive pairs: weights = number of positives reproduce it, for any labels.
  np.testing.assert_allclose(per_pair_mean, peer, rtol=1e-12)
  if len(set(positives[has_positive])) == 1:
    np.testing.assert_allclose(mean, peer, rtol=1e-12)


def test_ntxent_leading_batch_axes_are_independent_sets():
  rng = _rng(9)
  e = rng.normal(size=(3, 4, 2))
  labels = np.array([[0, 0, 1, 1], [0, 1, 0, 1], [1, 1, 0, 0]])
  with jax.enable_x64(True):
    out = jl.ntxent(e, labels, reduction="none")
  for b in range(3):
    np.testing.assert_allclose(out[b], ref_ntxent(e[b], labels[b], 0.07), rtol=1e-12, atol=1e-12)


def test_ntxent_where_removes_embeddings_from_the_set():
  rng = _rng(10)
  e = rng.normal(size=(6, 3))
  labels = np.array([0, 0, 1, 1, 2, 2])
  keep = np.array([True, True, True, False, True, True])
  poisoned = e.copy()
  poisoned[~keep] = np.nan
  with jax.enable_x64(True):
    out = jl.ntxent(poisoned, labels, where=keep, reduction="none")
    grad = np.asarray(jax.grad(lambda x: jl.ntxent(x, labels, where=keep))(jnp.asarray(poisoned)))
    mean = jl.ntxent(poisoned, labels, where=keep)
  expected = np.zeros(6)
  expected[keep] = ref_ntxent(e[keep], labels[keep], 0.07)
  np.testing.assert_allclose(out, expected, rtol=1e-12)
  # Anchor 2 lost its only positive: it has loss 0 and leaves the mean.
  np.testing.assert_allclose(mean, np.mean(expected[[0, 1, 4, 5]]), rtol=1e-12)
  assert np.all(np.isfinite(grad)) and np.all(grad[~keep] == 0)


# Exact gradients at kinks and coincidences, reverse and forward mode.
def _grads_and_tangents(f, args):
  """Reverse-mode gradients of ``sum(f)`` and forward-mode directional derivatives along ones, per argument."""
  grads = jax.grad(lambda *a: jnp.sum(f(*a)), argnums=tuple(range(len(args))))(*args)
  tangents = [
    jax.jvp(lambda x, i=i: f(*args[:i], x, *args[i + 1 :]), (args[i],), (jnp.ones_like(args[i]),))[1]
    for i in range(len(args))
  ]
  return [np.asarray(g) for g in grads], [np.asarray(t) for t in tangents]


def _assert_all_zero(*arrays):
  for a in arrays:
    assert np.all(a == 0), a


def test_margin_ranking_gradient_is_zero_at_the_kink():
  x1, x2 = jnp.array([1.5, -0.5, 2.0]), jnp.array([1.0, 0.0, 1.5])
  y = jnp.array([1.0, -1.0, 1.0])  # -y (x1 - x2) + 0.5 == 0 for every entry
  grads, tangents = _grads_and_tangents(lambda a, b: jl.margin_ranking(a, b, y, margin=0.5, reduction="none"), (x1, x2))
  _assert_all_zero(*grads, *tangents)
  # torch passes the full slope at the kink.
  t1 = torch.tensor(np.asarray(x1), requires_grad=True)
  F.margin_ranking_loss(t1, torch.tensor(np.asarray(x2)), torch.tensor(np.asarray(y)), margin=0.5).backward()
  assert np.all(t1.grad.numpy() != 0)


def test_triplet_margin_gradient_is_zero_at_the_hinge():
  a, p, n = jnp.zeros((1, 2)), jnp.array([[3.0, 4.0]]), jnp.array([[0.0, 6.0]])  # d(a,p) = 5, d(a,n) = 6
  grads, tangents = _grads_and_tangents(lambda *x: jl.triplet_margin(*x, eps=0.0, reduction="none"), (a, p, n))
  _assert_all_zero(*grads, *tangents)


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_triplet_margin_anchor_equal_positive_is_finite_and_symmetric(p):
  rng = _rng(11)
  a = jnp.asarray(rng.normal(size=(3, 4)), jnp.float32)
  n = jnp.asarray(rng.normal(size=(3, 4)) + 5.0, jnp.float32)
  loss = lambda a, p_, n: jl.triplet_margin(a, p_, n, p=p, margin=20.0, reduction="none")
  (g_a, g_p, g_n), tangents = _grads_and_tangents(loss, (a, a, n))
  assert all(np.all(np.isfinite(t)) for t in (g_a, g_p, g_n, *tangents))
  # The d(a, p) term contributes exactly nothing: the positive gets 0, the anchor only -grad d(a, n).
  _assert_all_zero(g_p)
  np.testing.assert_array_equal(g_a, -g_n)
  # torch's eps pushes the positive along -1 instead.
  ta, tp = torch.tensor(np.asarray(a), requires_grad=True), torch.tensor(np.asarray(a), requires_grad=True)
  F.triplet_margin_loss(ta, tp, torch.tensor(np.asarray(n)), p=p, margin=20.0, reduction="sum").backward()
  assert np.all(tp.grad.numpy() <= 0) and np.any(tp.grad.numpy() < 0)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_triplet_margin_half_inputs_compute_as_their_float32_values(dtype):
  # Half inputs reach the range check's lax.cond in their own dtype (no float32 copies): both branches (the
  # second through the anchor == positive row) give the value and gradients of the same values in float32.
  rng = _rng(13)
  a, p_, n = (jnp.asarray(rng.normal(size=(4, 8)), dtype) for _ in range(3))
  loss = jax.jit(jax.value_and_grad(lambda *x: jl.triplet_margin(*x, margin=3.0, swap=True), argnums=(0, 1, 2)))
  for positive in (p_, a.at[1:].set(p_[1:])):
    half_value, half_grads = loss(a, positive, n)
    value, grads = loss(*(x.astype(jnp.float32) for x in (a, positive, n)))
    np.testing.assert_array_equal(half_value, value)
    for half, full in zip(half_grads, grads, strict=True):
      assert half.dtype == dtype
      np.testing.assert_array_equal(half, full.astype(dtype))
  # Mixed precisions compute in float32 without rounding the float32 input to the half one.
  mixed = jl.triplet_margin(a, p_.astype(jnp.float32) + 1e-3, n, margin=3.0)
  np.testing.assert_array_equal(
    mixed, jl.triplet_margin(a.astype(jnp.float32), p_.astype(jnp.float32) + 1e-3, n.astype(jnp.float32), margin=3.0)
  )


def test_triplet_margin_swap_tie_takes_the_average():
  # anchor == positive: d(a, n) == d(p, n), a tie the swap resolves by averaging (the minimum-norm choice).
  rng = _rng(12)
  a = jnp.asarray(rng.normal(size=(2, 3)))
  n = jnp.asarray(rng.normal(size=(2, 3)))
  loss = lambda a, p_, n: jl.triplet_margin(a, p_, n, swap=True, margin=10.0, reduction="sum")
  g_a, g_p, g_n = jax.grad(loss, argnums=(0, 1, 2))(a, a, n)
  # The negative gets the full gradient of -d(a, n); anchor and positive share it half and half.
  g_distance = jax.grad(lambda a: jnp.sum(_custom.shifted_norm(a - n, 2.0, 1e-6)))(a)
  np.testing.assert_array_equal(g_a, g_p)
  np.testing.assert_allclose(g_n, g_distance, rtol=1e-6)
  np.testing.assert_allclose(g_a, -0.5 * g_distance, rtol=1e-6)


@pytest.mark.parametrize("label", [0.0, 1.0])
def test_contrastive_gradient_is_zero_when_embeddings_coincide(label):
  x = jnp.asarray(_rng(13).normal(size=(3, 4)), jnp.float32)
  y = jnp.full(3, label)
  grads, tangents = _grads_and_tangents(lambda a, b: jl.contrastive(a, b, y, reduction="none"), (x, x))
  _assert_all_zero(*grads, *tangents)
  hessian = jax.hessian(lambda a: jl.contrastive(a, x, y))(x)
  assert np.all(np.isfinite(np.asarray(hessian)))


def test_contrastive_is_smooth_at_the_margin():
  x1, x2 = jnp.zeros((1, 2)), jnp.array([[0.6, 0.8]])  # d == margin == 1 for a dissimilar pair
  grads, tangents = _grads_and_tangents(lambda a, b: jl.contrastive(a, b, jnp.zeros(1), reduction="none"), (x1, x2))
  _assert_all_zero(*grads, *tangents)


def test_cosine_embedding_gradient_is_zero_at_the_hinge():
  x1, x2 = jnp.array([[1.0, 0.0]]), jnp.array([[0.0, 2.0]])  # cos == 0 == margin, dissimilar pair
  grads, tangents = _grads_and_tangents(
    lambda a, b: jl.cosine_embedding(a, b, -jnp.ones(1), reduction="none"), (x1, x2)
  )
  _assert_all_zero(*grads, *tangents)


def test_ntxent_is_finite_on_zero_and_equal_embeddings():
  labels = jnp.array([0, 0, 1, 1])
  for e in (jnp.zeros((4, 3)), jnp.ones((4, 3))):
    value, grad = jax.value_and_grad(jl.ntxent)(e, labels)
    assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad)))
    assert np.all(np.isfinite(np.asarray(jax.hessian(lambda x: jl.ntxent(x, labels))(e))))


@pytest.mark.parametrize("p", [1.0, 1.5, 2.0, 3.0])
def test_norm_primitives(p):
  rng = _rng(14)
  x = rng.normal(size=(3, 4))
  x[1] = 0.0
  x[2, :2] = 0.0
  with jax.enable_x64(True):
    np.testing.assert_allclose(_custom.norm(jnp.asarray(x), p), np.linalg.norm(x, ord=p, axis=-1), rtol=1e-13)
    shifted = _custom.shifted_norm(jnp.asarray(x), p, 1e-3)
    np.testing.assert_allclose(shifted, np.linalg.norm(x + 1e-3, ord=p, axis=-1), rtol=1e-13)
    if p > 1:  # zero entries of a nonzero vector: sign(0) |0|^(p-1) = 0
      _assert_all_zero(np.asarray(jax.grad(lambda v: jnp.sum(_custom.norm(v, p)))(jnp.asarray(x)))[2, :2])
    for f in (lambda v: _custom.norm(v, p), lambda v: _custom.shifted_norm(v, p, 1e-3)):
      (g,), (t,) = _grads_and_tangents(f, (jnp.asarray(x),))
      _assert_all_zero(g[1], t[1])  # the zero vector: the minimum-norm subgradient
      assert np.all(np.isfinite(np.asarray(jax.hessian(lambda v, f=f: jnp.sum(f(v)))(jnp.asarray(x)))))


@pytest.mark.parametrize("traced", [False, True])
def test_distance_primitive_matches_numpy_on_every_branch(traced):
  """``_custom.distance`` (triplet_margin's p = 2 fast path): value, gradient and shift derivative against NumPy
  float64 on ordinary rows and on the rows that take its rescaling branch (x == y, huge, tiny)."""
  rng = _rng(15)
  x = rng.normal(size=(5, 4))
  y = x + rng.normal(size=(5, 4))
  y[1] = x[1]  # x == y: value |shift| sqrt(D), the minimum-norm gradient 0 in x and y
  x[2], y[2] = 1e30 * x[2], -1e30 * x[2]  # sum of squares beyond the float32 range
  x[3], y[3] = 1e-30 * x[3], 0.0  # below the smallest normal number after squaring
  shift = 1e-6
  z = x - y + shift
  value = np.linalg.norm(z, axis=-1)
  slope = np.where((x == y).all(-1, keepdims=True), 0.0, z / value[:, None])
  args = (jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32))
  s = jnp.float32(shift) if traced else shift
  f = lambda a, b, s: jnp.sum(_custom.distance(a, b, s) * jnp.arange(1.0, 6.0))
  np.testing.assert_allclose(_custom.distance(*args, s), value, rtol=1e-6)
  gx, gy = jax.grad(f, argnums=(0, 1))(*args, s)
  np.testing.assert_allclose(gx, slope * np.arange(1.0, 6.0)[:, None], rtol=1e-5, atol=1e-7)
  np.testing.assert_array_equal(gy, -gx)
  _assert_all_zero(gx[1], gy[1])
  (tx,) = jax.jvp(lambda a: _custom.distance(a, args[1], s), (args[0],), (jnp.ones_like(args[0]),))[1:]
  np.testing.assert_allclose(tx, slope.sum(-1), rtol=1e-5, atol=1e-7)
  if traced:  # d/dshift = sum(z) / ||z||, also where x == y
    ds = jax.grad(lambda s: jnp.sum(_custom.distance(*args, s)))(s)
    np.testing.assert_allclose(ds, np.sum(z.sum(-1) / value), rtol=1e-5)


def test_distances_share_one_range_check():
  """``_custom.distances`` (triplet_margin's pairs, one ``lax.cond``): an ordinary pair next to one with an
  overflowing row takes the scaled branch with it, and keeps the NumPy float64 values and gradients."""
  rng = _rng(16)
  x, y, u = (rng.normal(size=(3, 4)) for _ in range(3))
  u[1] = 1e30 * u[1]  # its sum of squares overflows float32: both pairs go through the scaled branch
  v = np.zeros_like(u)
  v[2] = u[2]  # and one row with u == v: gradient exactly 0
  pairs = ((x, y), (u, v))
  shift = 1e-6
  f32 = lambda a: jnp.asarray(a, jnp.float32)
  values = _custom.distances(tuple((f32(a), f32(b)) for a, b in pairs), shift)
  grads = jax.grad(lambda x, u: sum(jnp.sum(d) for d in _custom.distances(((x, f32(y)), (u, f32(v))), shift)), (0, 1))(
    f32(x), f32(u)
  )
  for (a, b), value, grad in zip(pairs, values, grads, strict=True):
    z = a - b + shift
    norm = np.linalg.norm(z, axis=-1)
    np.testing.assert_allclose(value, norm, rtol=1e-6)
    slope = np.where((a == b).all(-1, keepdims=True), 0.0, z / norm[:, None])
    np.testing.assert_allclose(grad, slope, rtol=1e-5, atol=1e-7)
  _assert_all_zero(grads[1][2])


# Trace-time errors.
X = jnp.ones((3, 4))


@pytest.mark.parametrize(
  "call, error, pattern",
  [
    (
      lambda: jl.triplet_margin(X, X, jnp.ones((3, 5))),
      ValueError,
      r"jaxloss\.triplet_margin: `anchor` and `negative` must have the same shape, got anchor\.shape=\(3, 4\)",
    ),
    (lambda: jl.triplet_margin(X, X, X, p=0.5), ValueError, r"`p` must be a number >= 1, got 0\.5"),
    (lambda: jl.triplet_margin(X, X, X, p=float("inf")), ValueError, r"`p` must be a number >= 1 \(and finite\)"),
    (lambda: jl.triplet_margin(X, X, X, margin=-1.0), ValueError, r"`margin` must be a non-negative number"),
    (lambda: jl.triplet_margin(X, X, X, eps=-1.0), ValueError, r"`eps` must be a non-negative number"),
    (lambda: jl.triplet_margin(X, X, X, p=jnp.asarray(2.0)), TypeError, r"`p` must be a Python number .*compile time"),
    (lambda: jl.triplet_margin(X, X, X, swap=1), TypeError, r"`swap` must be a bool, got 1"),
    (
      lambda: jl.triplet_margin(X, X, X, distance_fn=lambda x, y: x - y),
      ValueError,
      r"`distance_fn` must return one floating distance per example, shape \(3,\), got shape \(3, 4\)",
    ),
    (
      lambda: jl.triplet_margin(jnp.ones(3, jnp.int32), X, X),
      TypeError,
      r"`anchor` must be a floating-point array, got dtype int32",
    ),
    (lambda: jl.triplet_margin(jnp.ones(()), jnp.ones(()), jnp.ones(())), ValueError, r"rank >= 1"),
    (
      lambda: jl.contrastive(X, X, jnp.ones(4)),
      ValueError,
      r"jaxloss\.contrastive: `labels` must have shape \(3,\) \(the batch shape of `x1`, one per embedding\), got labels\.shape=\(4,\)",  # noqa: E501
    ),
    (lambda: jl.contrastive(X, X, jnp.ones(3), margin=-0.1), ValueError, r"`margin` must be a non-negative number"),
    (
      lambda: jl.cosine_embedding(X, X, jnp.ones(3), margin=1.5),
      ValueError,
      r"`margin` must be in \[-1, 1\], got 1\.5",
    ),
    (
      lambda: jl.margin_ranking(jnp.ones(3), jnp.ones(3), jnp.ones(4)),
      ValueError,
      r"`x1` and `labels` must have the same shape",
    ),
    (
      lambda: jl.margin_ranking(jnp.ones(3), jnp.ones(3), jnp.ones(3), where=jnp.ones(2, bool)),
      ValueError,
      r"`where` must broadcast to the shape of `x1` \(3,\), got where\.shape=\(2,\)",
    ),
    (
      lambda: jl.ntxent(jnp.ones(4), jnp.zeros(4, jnp.int32)),
      ValueError,
      r"`embeddings` must have shape \[\.\.\., B, D\]",
    ),
    (
      lambda: jl.ntxent(X, jnp.zeros(4, jnp.int32)),
      ValueError,
      r"`labels` must have shape \[\.\.\., B\], the shape of `embeddings` without its last axis \(3,\), got labels\.shape=\(4,\)",  # noqa: E501
    ),
    (lambda: jl.ntxent(X, jnp.zeros(3)), TypeError, r"`labels` must be an integer array, got dtype float32"),
    (lambda: jl.ntxent(X, jnp.zeros(3, jnp.int32), temperature=0.0), ValueError, r"`temperature` must be a positive"),
    (
      lambda: jl.ntxent(X, jnp.zeros(3, jnp.int32), weights=jnp.ones(4)),
      ValueError,
      r"`weights` must broadcast to the shape of the per-example loss \(3,\)",
    ),
  ],
)
def test_bad_input_fails_at_trace_time(call, error, pattern):
  with pytest.raises(error, match=pattern):
    call()


NAN, INF = float("nan"), float("inf")
Y = jnp.ones(3)


# Constant options: NaN is always an error; so is inf, since no option here has a meaningful infinite limit (the
# loss would be the constant 0 or inf, or NaN: inf - inf in the distances).
@pytest.mark.parametrize(
  "call, option",
  [
    (lambda v: jl.margin_ranking(Y, Y, Y, margin=v), "margin"),
    (lambda v: jl.triplet_margin(X, X, X, margin=v), "margin"),
    (lambda v: jl.triplet_margin(X, X, X, eps=v), "eps"),
    (lambda v: jl.contrastive(X, X, Y, margin=v), "margin"),
    (lambda v: jl.cosine_embedding(X, X, Y, margin=v), "margin"),
    (lambda v: jl.ntxent(X, jnp.zeros(3, jnp.int32), temperature=v), "temperature"),
  ],
)
def test_nan_and_infinite_options_are_errors(call, option):
  for value in (NAN, INF, -INF):
    with pytest.raises(ValueError, match=rf"`{option}` must be .*got {value}"):
      call(value)


def test_empty_batches_have_mean_zero():
  """Size-0 batches (and an empty embedding axis) give 0 with a zero gradient, all in one compiled program."""
  empty = jnp.zeros((0, 4))
  calls = [
    lambda e: jl.margin_ranking(e[:, 0], e[:, 1], jnp.ones(0)),
    lambda e: jl.triplet_margin(e, e, e),
    lambda e: jl.triplet_margin(e, e, e, p=3.0, swap=True),
    lambda e: jl.contrastive(e, e, jnp.ones(0)),
    lambda e: jl.cosine_embedding(e, e, jnp.ones(0)),
    lambda e: jl.ntxent(e, jnp.zeros(0, int)),
    lambda e: jl.ntxent(e.reshape(2, 0, 4), jnp.zeros((2, 0), int)),
    lambda e: jl.ntxent(e, jnp.zeros(0, int), temperature=jnp.asarray(0.5)),
  ]
  for value, grad in jax.jit(lambda e: [jax.value_and_grad(f)(e) for f in calls])(empty):
    assert float(value) == 0.0 and grad.shape == (0, 4)
  assert float(jl.ntxent(jnp.zeros((0, 4)), jnp.zeros(0, int))) == 0.0  # the reproducer, eagerly
  assert float(jl.checked(jl.ntxent)(jnp.zeros((0, 4)), jnp.zeros(0, int))) == 0.0
  # No features: every distance is 0, so the loss is the margin (no max over an empty axis).
  assert float(jl.triplet_margin(*(jnp.zeros((2, 0)),) * 3, margin=0.5)) == 0.5


def test_triplet_margin_traced_eps_is_differentiable():
  """``eps`` traced is an input of the distance, not a non-differentiable constant (which would get gradient 0):
  its gradient matches finite differences, also where anchor == positive (the distance is then ||eps * 1||)."""
  rng = _rng(15)
  with jax.enable_x64(True):
    a = jnp.asarray(rng.normal(size=(3, 4)))
    pos = a.at[1:].add(0.3 * jnp.asarray(rng.normal(size=(2, 4))))  # triplet 0: anchor == positive
    neg = jnp.asarray(rng.normal(size=(3, 4)))
    for p in (1.0, 2.0, 3.0):

      def loss(eps, margin, a, p=p):
        return jl.triplet_margin(a, pos, neg, p=p, eps=eps, margin=margin, reduction="sum")

      run = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))
      value, (g_eps, g_margin, g_a) = run(jnp.asarray(0.1), jnp.asarray(20.0), a)
      step = 1e-6
      numeric = (loss(jnp.asarray(0.1 + step), 20.0, a) - loss(jnp.asarray(0.1 - step), 20.0, a)) / (2 * step)
      np.testing.assert_allclose(g_eps, numeric, rtol=1e-7, atol=1e-7)
      assert float(g_margin) == 3.0  # every triplet is inside the margin
      const_value, const_g_a = jax.value_and_grad(lambda a, p=p: loss(0.1, 20.0, a))(a)
      np.testing.assert_allclose(value, const_value, rtol=1e-12)
      np.testing.assert_allclose(g_a, const_g_a, rtol=1e-12)
      # A traced 0 (eps and margin): finite, and the same as the constants.
      value, grads = run(jnp.asarray(0.0), jnp.asarray(0.0), a)
      assert np.isfinite(float(value)) and all(np.all(np.isfinite(np.asarray(g))) for g in grads)
      np.testing.assert_allclose(value, loss(0.0, 0.0, a), rtol=1e-12)


# The checked mode.
@pytest.mark.parametrize(
  "call, pattern",
  [
    (
      lambda c: c(jl.margin_ranking)(jnp.zeros(2), jnp.zeros(2), jnp.array([1.0, 0.0])),
      r"jaxloss\.margin_ranking: `labels` must be -1 or \+1, found 0\.0",
    ),
    (
      lambda c: c(jl.cosine_embedding)(X, X, jnp.array([1.0, -1.0, 2.0])),
      r"jaxloss\.cosine_embedding: `labels` must be -1 or \+1, found 2\.0",
    ),
    (
      lambda c: c(jl.contrastive)(X, X, jnp.array([1.0, -0.5, 0.0])),
      r"jaxloss\.contrastive: `labels` must be in \[0, 1\], found -0\.5",
    ),
    (
      lambda c: c(jl.triplet_margin)(X, X.at[1, 2].set(jnp.nan), X),
      r"jaxloss\.triplet_margin: `positive` contains NaN",
    ),
    (lambda c: c(jl.ntxent)(X.at[0, 0].set(jnp.nan), jnp.zeros(3, jnp.int32)), r"`embeddings` contains NaN"),
  ],
)
def test_checked_reports_invalid_values(call, pattern):
  with pytest.raises(checkify.JaxRuntimeError, match=pattern):
    call(jl.checked)
  call(lambda f: f)


def test_checked_ignores_masked_labels():
  where = jnp.array([True, True, False])
  value = jl.checked(jl.cosine_embedding)(X, X, jnp.array([1.0, 1.0, 5.0]), where=where)
  assert float(value) == pytest.approx(0.0, abs=1e-6)
