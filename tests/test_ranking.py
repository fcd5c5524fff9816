"""Ranking losses: values and gradients against NumPy float64 references written with explicit loops over
pairs and items, the rax examples, item masks (padding), the exact hinge kink, errors and the checked mode."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

import jaxloss as jl

REDUCTIONS = ["mean", "sum", "none"]


def _softplus(x):
  return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0.0)


def ref_pairwise(scores, labels, valid, pair_loss):
  """Per-list sum of ``pair_loss(s_i - s_j)`` over valid pairs with ``y_i > y_j``; and whether a list has one."""
  batch = scores.shape[:-1]
  out, has_pair = np.zeros(batch), np.zeros(batch, bool)
  for index in np.ndindex(*batch):
    s, y, v = scores[index], labels[index], valid[index]
    for i, j in itertools.product(range(len(s)), repeat=2):
      if v[i] and v[j] and y[i] > y[j]:
        out[index] += pair_loss(s[i] - s[j])
        has_pair[index] = True
  return out, has_pair


def ref_softmax(scores, labels, valid):
  batch = scores.shape[:-1]
  out, has_relevant = np.zeros(batch), np.zeros(batch, bool)
  for index in np.ndindex(*batch):
    s, y = scores[index][valid[index]], labels[index][valid[index]]
    if np.sum(y) > 0:
      log_softmax = s - np.log(np.sum(np.exp(s)))
      out[index] = -np.sum(y / np.sum(y) * log_softmax)
      has_relevant[index] = True
  return out, has_relevant


def _reference(name, scores, labels, valid, margin=1.0):
  if name == "pairwise_hinge":
    return ref_pairwise(scores, labels, valid, lambda gap: max(0.0, margin - gap))
  if name == "pairwise_logistic":
    return ref_pairwise(scores, labels, valid, lambda gap: _softplus(-gap))
  return ref_softmax(scores, labels, valid)


def _reduce(per_list, counts, reduction, weights):
  w = np.broadcast_to(weights, per_list.shape)
  if reduction == "none":
    return w * per_list
  if reduction == "sum":
    return np.sum(w * per_list)
  return np.sum(w * per_list) / np.sum(w * counts)


LOSSES = [
  ("pairwise_hinge", jl.pairwise_hinge, {}),
  ("pairwise_hinge", jl.pairwise_hinge, {"margin": 0.3}),
  ("pairwise_logistic", jl.pairwise_logistic, {}),
  ("softmax_ranking", jl.softmax_ranking, {}),
]


@pytest.mark.parametrize("name, fn, options", LOSSES, ids=lambda x: str(x) if isinstance(x, dict) else None)
@pytest.mark.parametrize("batch", [(4,), (2, 3)], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_matches_numpy_reference(name, fn, options, batch, reduction):
  rng = np.random.default_rng(len(batch))
  scores = rng.normal(size=(*batch, 6))
  labels = rng.integers(0, 3, size=(*batch, 6)).astype(float)
  valid = rng.uniform(size=(*batch, 6)) < 0.8
  labels.reshape(-1, 6)[0] = 0.0  # a list with nothing to rank: loss 0, left out of the mean
  weights = rng.uniform(0.5, 2.0, batch)
  expected, counts = _reference(name, scores, labels, valid, **options)
  with jax.enable_x64(True):
    out = fn(scores, labels, reduction=reduction, weights=weights, where=valid, **options)
    plain = fn(scores, labels, reduction=reduction, **options)
  np.testing.assert_allclose(out, _reduce(expected, counts, reduction, weights), rtol=1e-12)
  expected_plain, counts_plain = _reference(name, scores, labels, np.ones_like(valid), **options)
  np.testing.assert_allclose(plain, _reduce(expected_plain, counts_plain, reduction, 1.0), rtol=1e-12)


@pytest.mark.parametrize("name, fn, options", LOSSES, ids=lambda x: str(x) if isinstance(x, dict) else None)
def test_gradient_matches_numpy_reference(name, fn, options):
  # Central differences of the float64 reference, away from the hinge's kinks.
  rng = np.random.default_rng(3)
  scores = rng.normal(size=(2, 5))
  labels = rng.integers(0, 3, size=(2, 5)).astype(float)
  valid = np.array([[True] * 5, [True, True, True, False, True]])
  with jax.enable_x64(True):
    grad = jax.grad(lambda s: fn(s, labels, where=valid, reduction="sum", **options))(jnp.asarray(scores))
  expected = np.zeros_like(scores)
  for index in np.ndindex(*scores.shape):
    step = np.zeros_like(scores)
    step[index] = 1e-6
    up = np.sum(_reference(name, scores + step, labels, valid, **options)[0])
    down = np.sum(_reference(name, scores - step, labels, valid, **options)[0])
    expected[index] = (up - down) / 2e-6
  np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-8)
  assert np.all(np.asarray(grad)[1, 3] == 0)  # the masked item


def test_rax_examples():
  # The per-list values of rax's docstrings (rax.pairwise_hinge_loss, pairwise_logistic_loss, softmax_loss).
  scores = jnp.array([[2.0, 1.0, 3.0], [1.0, 0.5, 1.5]])
  labels = jnp.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
  np.testing.assert_allclose(jl.pairwise_hinge(scores, labels, reduction="none"), [2.0, 0.5])
  np.testing.assert_allclose(jl.pairwise_logistic(scores, labels, reduction="none"), [1.6265235, 0.7873387], rtol=1e-6)
  np.testing.assert_allclose(jl.softmax_ranking(scores, labels, reduction="none"), [1.4076059, 0.68026966], rtol=1e-6)


@pytest.mark.parametrize("fn", [jl.pairwise_hinge, jl.pairwise_logistic, jl.softmax_ranking])
def test_masked_items_are_padding(fn):
  # A list padded with garbage (NaN, inf) under where=False gives the loss of the unpadded list.
  rng = np.random.default_rng(4)
  scores, labels = rng.normal(size=4), np.array([2.0, 0.0, 1.0, 0.0])
  padded_scores = np.concatenate([scores, [np.nan, np.inf]])
  padded_labels = np.concatenate([labels, [5.0, np.nan]])
  where = np.array([True] * 4 + [False] * 2)
  value, grad = jax.value_and_grad(lambda s: fn(s, padded_labels, where=where))(jnp.asarray(padded_scores))
  plain_value, plain_grad = jax.value_and_grad(lambda s: fn(s, labels))(jnp.asarray(scores))
  np.testing.assert_allclose(value, plain_value, rtol=1e-6)
  np.testing.assert_allclose(grad[:4], plain_grad, rtol=1e-6)
  assert np.all(np.asarray(grad[4:]) == 0)


@pytest.mark.parametrize("fn", [jl.pairwise_hinge, jl.pairwise_logistic, jl.softmax_ranking])
def test_lists_with_nothing_to_rank(fn):
  scores = jnp.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
  labels = jnp.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])  # the second list: all labels equal
  where = jnp.array([[True] * 3, [True] * 3, [False] * 3])  # the third: every item masked
  value, grad = jax.value_and_grad(lambda s: fn(s, labels, where=where))(scores)
  per_list = fn(scores, labels, where=where, reduction="none")
  np.testing.assert_allclose(value, per_list[0], rtol=1e-6)  # the mean counts only the first list
  assert np.all(np.asarray(per_list[1:]) == 0) and np.all(np.asarray(grad[1:]) == 0)
  nothing = jnp.zeros((3, 3), bool)
  value, grad = jax.value_and_grad(lambda s: fn(s, labels, where=nothing))(scores)
  assert float(value) == 0.0 and np.all(np.asarray(grad) == 0)


def test_pairwise_hinge_gradient_is_zero_at_the_kink():
  scores = jnp.array([2.0, 1.0, 0.0])  # gaps of exactly the margin (1) between consecutive items
  labels = jnp.array([2.0, 1.0, 0.0])
  g = jax.grad(lambda s: jl.pairwise_hinge(s, labels))(scores)
  _, tangent = jax.jvp(lambda s: jl.pairwise_hinge(s, labels), (scores,), (jnp.ones(3),))
  assert np.all(np.asarray(g) == 0) and float(tangent) == 0.0
  # Below the margin the slope is -1 for the better item of a pair and +1 for the worse; pair (0, 2) is at the kink.
  g = jax.grad(lambda s: jl.pairwise_hinge(s, labels))(jnp.array([0.5, 0.0, -0.5]))
  np.testing.assert_array_equal(g, [-1.0, 0.0, 1.0])


def test_softmax_ranking_is_stable_for_large_scores():
  scores = jnp.array([1e4, 0.0, -1e4])
  value, grad = jax.value_and_grad(lambda s: jl.softmax_ranking(s, jnp.array([0.0, 1.0, 0.0])))(scores)
  np.testing.assert_allclose(value, 1e4, rtol=1e-6)
  np.testing.assert_allclose(grad, [1.0, -1.0, 0.0], atol=1e-6)


def test_softmax_ranking_item_scored_minus_inf_with_label_zero_drops_out():
  # -inf is a common way to drop an item: it must add nothing (0 * -inf would be NaN), as masking it with `where`.
  scores, labels = jnp.array([[0.5, -jnp.inf, -1.0]]), jnp.array([[1.0, 0.0, 0.0]])
  kept = jnp.array([[True, False, True]])
  value, grad = jax.value_and_grad(jl.softmax_ranking)(scores, labels)
  masked, masked_grad = jax.value_and_grad(lambda s: jl.softmax_ranking(s, labels, where=kept))(
    jnp.where(kept, scores, 0)
  )
  np.testing.assert_allclose(value, np.log1p(np.exp(-1.5)), rtol=1e-6)
  np.testing.assert_allclose(value, masked, rtol=1e-6)
  np.testing.assert_allclose(grad, masked_grad, atol=1e-7)
  assert float(grad[0, 1]) == 0.0


@pytest.mark.parametrize(
  "call, error, pattern",
  [
    (
      lambda: jl.pairwise_hinge(jnp.ones((2, 3)), jnp.ones((2, 4))),
      ValueError,
      r"jaxloss\.pairwise_hinge: `scores` and `labels` must have the same shape, got scores\.shape=\(2, 3\)",
    ),
    (
      lambda: jl.softmax_ranking(jnp.ones((2, 3)), jnp.ones((2, 3)), where=jnp.ones(2, bool)),
      ValueError,
      r"`where` must broadcast to the shape of `scores` \(`where` masks list items\) \(2, 3\), got where\.shape=\(2,\)",
    ),
    (
      lambda: jl.pairwise_logistic(jnp.ones((2, 3)), jnp.ones((2, 3)), weights=jnp.ones(3)),
      ValueError,
      r"`weights` must broadcast to the shape of the per-example loss \(2,\), got weights\.shape=\(3,\)",
    ),
    (lambda: jl.pairwise_hinge(jnp.ones(()), jnp.ones(())), ValueError, r"`scores` must have shape \[\.\.\., L\]"),
    (lambda: jl.pairwise_hinge(jnp.ones(3, jnp.int32), jnp.ones(3)), TypeError, r"`scores` must be a floating-point"),
    (lambda: jl.pairwise_hinge(jnp.ones(3), jnp.ones(3), margin="1"), TypeError, r"`margin` must be a number or an"),
    (
      lambda: jl.pairwise_hinge(jnp.ones(3), jnp.ones(3), margin=float("nan")),
      ValueError,
      r"`margin` must be a finite number, got nan",
    ),
    # An infinite margin has no meaningful limit (every pair costs inf, or nothing ever does): an error too.
    (lambda: jl.pairwise_hinge(jnp.ones(3), jnp.ones(3), margin=float("inf")), ValueError, r"finite number, got inf"),
    (lambda: jl.pairwise_hinge(jnp.ones(3), jnp.ones(3), margin=-float("inf")), ValueError, r"finite number, got -inf"),
  ],
)
def test_bad_input_fails_at_trace_time(call, error, pattern):
  with pytest.raises(error, match=pattern):
    call()


def test_empty_batches_and_lists_have_mean_zero():
  """No lists, or lists of no items: 0 with a zero gradient (no max over an empty axis), in one compiled program."""
  fns = [jl.pairwise_hinge, jl.pairwise_logistic, jl.softmax_ranking]
  shapes = [(0, 5), (3, 0)]

  def run(margin):
    out = []
    for shape in shapes:
      s = jnp.zeros(shape)
      for fn in fns:
        options = {"margin": margin} if fn is jl.pairwise_hinge else {}
        out.append(jax.value_and_grad(lambda s, fn=fn, options=options: fn(s, jnp.zeros_like(s), **options))(s))
    return out

  for value, grad in jax.jit(run)(jnp.asarray(1.0)):
    assert float(value) == 0.0 and not np.any(np.asarray(grad))


def test_checked_reports_negative_labels_and_nan():
  with pytest.raises(checkify.JaxRuntimeError, match=r"jaxloss\.softmax_ranking: `labels` must be >= 0, found -1\.0"):
    jl.checked(jl.softmax_ranking)(jnp.zeros(3), jnp.array([1.0, -1.0, 0.0]))
  with pytest.raises(checkify.JaxRuntimeError, match=r"jaxloss\.pairwise_hinge: `scores` contains NaN"):
    jl.checked(jl.pairwise_hinge)(jnp.array([0.0, jnp.nan]), jnp.array([1.0, 0.0]))
  masked = jl.checked(jl.pairwise_hinge)(
    jnp.array([0.0, 1.0, jnp.nan]), jnp.array([1.0, 0.0, 0.0]), where=jnp.array([True, True, False])
  )
  assert float(masked) == 2.0
