"""Metric surrogates (soft F-beta, AUC surrogate, Smooth-AP, ApproxNDCG, ListMLE): values and gradients against
NumPy float64 references written from the papers' formulas (gradients by central differences of the reference),
dice as soft F1, the exact metric (scikit-learn) in the limit temperature -> 0, rax's ApproxNDCG example, and
finite gradients at ties, all-positive, all-negative and empty lists."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, fbeta_score, ndcg_score

import jaxloss as jl
from registry import numeric_grad

RNG = np.random.default_rng(0)
SCORES = RNG.normal(size=(4, 7))
BINARY = np.stack([RNG.permutation([1, 1, 0, 0, 1, 0, 0]) for _ in range(4)]).astype(float)
GRADED = np.stack([RNG.permutation([0, 0, 1, 1, 2, 3, 0]) for _ in range(4)]).astype(float)
WHERE = RNG.uniform(size=(4, 7)) < 0.85


def _sigmoid(x):
  return 1 / (1 + np.exp(-x))


def _close(actual, desired, rtol=1e-9, atol=1e-10):
  np.testing.assert_allclose(np.asarray(actual), desired, rtol=rtol, atol=atol)


def _check(fn, ref, scores, *args, rtol=1e-5, **kw):
  """Per-list values to 1e-9 and the summed gradient to central differences of the reference, in float64."""
  with jax.enable_x64(True):
    _close(fn(scores, *args, reduction="none", **kw), ref(scores))
    grad = jax.grad(lambda s: fn(s, *args, reduction="sum", **kw))(scores)
    _close(grad, numeric_grad(lambda s: ref(s).sum(), scores), rtol=rtol, atol=1e-7)


# soft F-beta -------------------------------------------------------------------------------------


def ref_fbeta(p, t, beta, counted):
  tp, fp, fn = (np.sum(a, axis=counted) for a in (p * t, p * (1 - t), (1 - p) * t))
  return 1 - (1 + beta**2) * tp / ((1 + beta**2) * tp + beta**2 * fn + fp)


def test_soft_fbeta_matches_the_formula_for_every_average():
  p, t = RNG.uniform(0.05, 0.95, size=(2, 8, 3)), RNG.integers(0, 2, size=(2, 8, 3)).astype(float)
  _check(jl.soft_fbeta, lambda q: ref_fbeta(q, t, 2.0, (1, 2)), p, t, beta=2.0, axis=(1, 2))
  _check(jl.soft_fbeta, lambda q: ref_fbeta(q, t, 0.5, (1, 2)), p, t, beta=0.5, average="micro", axis=1)
  _check(jl.soft_fbeta, lambda q: ref_fbeta(q, t, 1.0, 1).mean(-1), p, t, average="macro", axis=1)


def test_soft_fbeta_at_beta_1_binary_is_dice_and_at_hard_probs_is_sklearns_fbeta():
  p, t = RNG.uniform(size=(3, 4, 5)), (RNG.uniform(size=(3, 4, 5)) < 0.4).astype(float)
  _close(jl.soft_fbeta(p, t, axis=(1, 2), reduction="none"), jl.dice(p, t, smooth=0.0, reduction="none"), 1e-6, 1e-7)
  hard = (RNG.uniform(size=(30, 4)) < 0.5).astype(float)
  truth = (RNG.uniform(size=(30, 4)) < 0.5).astype(float)
  with jax.enable_x64(True):
    for average in ("micro", "macro"):
      expected = 1 - fbeta_score(truth, hard, beta=0.7, average=average)
      _close(jl.soft_fbeta(hard, truth, beta=0.7, average=average), expected)
    _close(jl.soft_fbeta(hard[:, 0], truth[:, 0], beta=0.7), 1 - fbeta_score(truth[:, 0], hard[:, 0], beta=0.7))


# AUC surrogate -----------------------------------------------------------------------------------

PAIR_LOSSES = {
  "squared_hinge": lambda u: np.maximum(u, 0) ** 2,
  "logistic": lambda u: np.log1p(np.exp(u)),
  "square": lambda u: u**2,
}


def ref_auc(scores, labels, valid, phi, margin):
  out = np.zeros(scores.shape[:-1])
  for b in range(len(out)):
    pairs = [
      phi(margin - (scores[b, i] - scores[b, j]))
      for i, j in itertools.product(range(scores.shape[-1]), repeat=2)
      if valid[b, i] and valid[b, j] and labels[b, i] > 0 and labels[b, j] <= 0
    ]
    out[b] = np.mean(pairs) if pairs else 0.0
  return out


@pytest.mark.parametrize("kind", sorted(PAIR_LOSSES))
def test_auc_surrogate_matches_the_pairwise_mean(kind):
  ref = lambda s: ref_auc(s, BINARY, WHERE, PAIR_LOSSES[kind], 0.8)
  _check(jl.auc_surrogate, ref, SCORES, BINARY, loss=kind, margin=0.8, where=WHERE)


def test_auc_surrogate_without_pairs_is_zero_and_left_out():
  s = jnp.asarray(SCORES[:2])
  labels = jnp.asarray(np.stack([np.ones(7), BINARY[1]]))
  for kind in PAIR_LOSSES:
    value = jl.auc_surrogate(s, labels, loss=kind, reduction="none")
    assert float(value[0]) == 0.0
    _close(jl.auc_surrogate(s, labels, loss=kind), float(value[1]), 1e-6)
    g = jax.grad(jl.auc_surrogate)(s, labels, loss=kind)
    assert np.all(np.asarray(g)[0] == 0)


# Smooth-AP ---------------------------------------------------------------------------------------


def ref_smooth_ap(scores, labels, valid, temperature):
  """Brown et al. 2020, eq. (8): AP with R(i, S) = 1 + sum_j sigmoid((s_j - s_i) / tau)."""
  out = np.zeros(scores.shape[:-1])
  for b in range(len(out)):
    items = [i for i in range(scores.shape[-1]) if valid[b, i]]
    positives = [i for i in items if labels[b, i] > 0]
    total = 0.0
    for i in positives:
      rank = 1 + sum(_sigmoid((scores[b, j] - scores[b, i]) / temperature) for j in items if j != i)
      rank_pos = 1 + sum(_sigmoid((scores[b, j] - scores[b, i]) / temperature) for j in positives if j != i)
      total += rank_pos / rank
    out[b] = 1 - total / len(positives) if positives else 0.0
  return out


def test_smooth_ap_matches_the_paper_and_converges_to_average_precision():
  _check(jl.smooth_ap, lambda s: ref_smooth_ap(s, BINARY, WHERE, 0.3), SCORES, BINARY, temperature=0.3, where=WHERE)
  scores = RNG.normal(size=(3, 40))
  labels = (RNG.uniform(size=(3, 40)) < 0.3).astype(float)
  exact = np.array([1 - average_precision_score(y, s) for s, y in zip(scores, labels, strict=True)])
  with jax.enable_x64(True):
    errors = [
      np.max(np.abs(jl.smooth_ap(scores, labels, temperature=t, reduction="none") - exact)) for t in (1e-1, 1e-2, 1e-7)
    ]
  assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-9, errors


# ApproxNDCG --------------------------------------------------------------------------------------


def ref_approx_ndcg(scores, labels, valid, temperature, k=None):
  """Qin et al. 2010 as rax: approximate ranks, and rax's approx_cutoff between the k-th and (k+1)-th rank."""
  out = np.zeros(scores.shape[:-1])
  for b in range(len(out)):
    s, y = scores[b][valid[b]], labels[b][valid[b]]
    n = len(s)
    rank = np.array([1 + sum(_sigmoid((s[j] - s[i]) / temperature) for j in range(n) if j != i) for i in range(n)])
    cut = np.ones(n)
    if k is not None and n > k:
      ordered = np.sort(rank)
      cut = _sigmoid(((ordered[k - 1] + ordered[k]) / 2 - rank) / temperature)
    gain = 2**y - 1
    dcg = np.sum(gain * cut / np.log2(1 + rank))
    ideal_gain = np.sort(gain)[::-1][: n if k is None else k]
    ideal = np.sum(ideal_gain / np.log2(np.arange(2, len(ideal_gain) + 2)))
    out[b] = 1 - dcg / ideal if ideal > 0 else 0.0
  return out


def test_approx_ndcg_matches_rax_semantics_and_its_example():
  _check(jl.approx_ndcg, lambda s: ref_approx_ndcg(s, GRADED, WHERE, 0.7), SCORES, GRADED, temperature=0.7, where=WHERE)
  # The cutoff point is a constant for the gradient (stop_gradient in rax): differentiate the reference likewise.
  with jax.enable_x64(True):
    _close(
      jl.approx_ndcg(SCORES, GRADED, k=3, where=WHERE, reduction="none"), ref_approx_ndcg(SCORES, GRADED, WHERE, 1.0, 3)
    )
  # rax.utils.approx_ranks docstring: approx NDCG 0.63092977, gradient [-0.03763788 -0.03763788 0.07527576].
  s, y = jnp.array([-1.0, 1.0, 0.0]), jnp.array([0.0, 0.0, 1.0])
  _close(jl.approx_ndcg(s, y), 1 - 0.63092977, 1e-6)
  _close(jax.grad(jl.approx_ndcg)(s, y), [0.03763788, 0.03763788, -0.07527576], 1e-5)


def test_approx_ndcg_converges_to_ndcg_at_k():
  scores = RNG.normal(size=(3, 12))
  labels = RNG.integers(0, 4, size=(3, 12)).astype(float)
  with jax.enable_x64(True):
    for k in (None, 5):
      exact = np.array([1 - ndcg_score([2**y - 1], [s], k=k) for s, y in zip(scores, labels, strict=True)])
      values = [jl.approx_ndcg(scores, labels, temperature=t, k=k, reduction="none") for t in (1e-1, 1e-2, 1e-7)]
      errors = [np.max(np.abs(v - exact)) for v in values]
      assert errors[0] > errors[2] and errors[2] < 1e-9, (k, errors)


# ListMLE -----------------------------------------------------------------------------------------


def ref_listmle(scores, labels, valid):
  """Xia et al. 2008: -log of the Plackett-Luce probability of the labels' order (stable among equal labels)."""
  out = np.zeros(scores.shape[:-1])
  for b in range(len(out)):
    order = [i for i in np.argsort(-labels[b], kind="stable") if valid[b, i]]
    s = scores[b][order]
    out[b] = sum(np.log(np.sum(np.exp(s[r:]))) - s[r] for r in range(len(s)))
  return out


def test_listmle_matches_the_plackett_luce_likelihood():
  _check(jl.listmle, lambda s: ref_listmle(s, GRADED, WHERE), SCORES, GRADED, where=WHERE)


# Edges -------------------------------------------------------------------------------------------

LIST_LOSSES = [
  (jl.auc_surrogate, {}),
  (jl.auc_surrogate, {"loss": "logistic"}),
  (jl.auc_surrogate, {"loss": "square"}),
  (jl.smooth_ap, {}),
  (jl.approx_ndcg, {}),
  (jl.approx_ndcg, {"k": 2}),
  (jl.listmle, {}),
]


@pytest.mark.parametrize("fn, kw", LIST_LOSSES, ids=lambda v: getattr(v, "__name__", None) or str(v))
def test_finite_gradients_at_ties_all_positive_all_negative_and_empty_lists(fn, kw):
  y = jnp.asarray(BINARY)
  for s, labels in (
    (jnp.zeros((4, 7)), y),  # every score tied
    (jnp.asarray(SCORES), jnp.ones((4, 7))),
    (jnp.asarray(SCORES), jnp.zeros((4, 7))),
    (jnp.zeros((4, 0)), jnp.zeros((4, 0))),  # empty lists
  ):
    value, g = jax.value_and_grad(lambda s, labels=labels: fn(s, labels, **kw))(s)
    assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(g)))
  assert float(fn(jnp.zeros((4, 0)), jnp.zeros((4, 0)), **kw)) == 0.0


def test_bad_options_are_errors():
  with pytest.raises(ValueError, match=r"jaxloss\.soft_fbeta: `average` must be one of 'binary', 'micro', 'macro'"):
    jl.soft_fbeta(SCORES, BINARY, average="weighted")
  with pytest.raises(ValueError, match=r"jaxloss\.soft_fbeta: `axis`=-1 must not include the class axis"):
    jl.soft_fbeta(SCORES, BINARY, average="macro", axis=-1)
  with pytest.raises(ValueError, match=r"jaxloss\.auc_surrogate: `loss` must be one of 'squared_hinge'"):
    jl.auc_surrogate(SCORES, BINARY, loss="hinge")
  with pytest.raises(ValueError, match=r"jaxloss\.smooth_ap: `temperature` must be a positive number"):
    jl.smooth_ap(SCORES, BINARY, temperature=0.0)
  with pytest.raises(ValueError, match=r"jaxloss\.approx_ndcg: `k` must be None or an int >= 1, got 0"):
    jl.approx_ndcg(SCORES, GRADED, k=0)
