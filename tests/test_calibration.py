"""Calibration losses: values and gradients against NumPy float64 references written from the papers' formulas
(gradients of the set losses by central differences of the reference), scikit-learn's Brier score, the soft ECE's
convergence to the exact ECE as the temperature goes to 0, and edges (ties, -inf logits, empty sets)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import brier_score_loss

import jaxloss as jl
from registry import numeric_grad

RNG = np.random.default_rng(0)
LOGITS = RNG.normal(size=(7, 5)) * 2
LABELS = RNG.integers(0, 5, size=7)
SET_LOGITS = RNG.normal(size=(3, 9, 4)) * 2
SET_LABELS = RNG.integers(0, 4, size=(3, 9))
SET_WHERE = RNG.uniform(size=(3, 9)) < 0.8


def _softmax(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def _close(actual, desired, rtol=1e-9, atol=1e-10):
  np.testing.assert_allclose(np.asarray(actual), desired, rtol=rtol, atol=atol)


def test_brier_matches_the_formula_and_sklearn():
  with jax.enable_x64(True):
    p = _softmax(LOGITS)
    one_hot = np.eye(5)[LABELS]
    _close(jl.brier(LOGITS, LABELS, reduction="none"), np.sum((p - one_hot) ** 2, -1))
    _close(jl.brier(p, LABELS, from_logits=False, reduction="none"), np.sum((p - one_hot) ** 2, -1))
    # d/dz sum_c (p_c - y_c)^2 = 2 p_k ((p_k - y_k) - sum_c p_c (p_c - y_c))
    d = p - one_hot
    expected = 2 * p * (d - np.sum(p * d, -1, keepdims=True)) / len(LABELS)
    _close(jax.grad(jl.brier)(LOGITS, LABELS), expected)
    z, t = LOGITS[:, 0], (LABELS % 2).astype(float)
    probs = 1 / (1 + np.exp(-z))
    _close(jl.brier(z, t), brier_score_loss(t, probs))
    _close(jl.brier(probs, t, from_logits=False), brier_score_loss(t, probs))


def _entropy(x):
  p = _softmax(x)
  return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0), -1)


def test_entropy_and_confidence_penalty_match_the_formulas():
  with jax.enable_x64(True):
    p = _softmax(LOGITS)
    h = _entropy(LOGITS)
    _close(jl.entropy(LOGITS, reduction="none"), h)
    _close(jl.entropy(LOGITS.T, axis=0, reduction="none"), h)
    _close(jax.grad(jl.entropy)(LOGITS), -p * (np.log(p) + h[:, None]) / len(LOGITS))
    beta = 0.3
    nll = -np.log(p[np.arange(7), LABELS])
    _close(jl.confidence_penalty(LOGITS, LABELS, beta=beta, reduction="none"), nll - beta * h)
    expected = (p - np.eye(5)[LABELS] + beta * p * (np.log(p) + h[:, None])) / len(LOGITS)
    _close(jax.grad(jl.confidence_penalty)(LOGITS, LABELS, beta=beta), expected)
    _close(jl.confidence_penalty(LOGITS, LABELS, beta=0.0), jl.cross_entropy(LOGITS, LABELS))


def test_entropy_is_finite_at_minus_inf_logits():
  x = jnp.array([[0.0, 1.0, -jnp.inf], [-jnp.inf, -jnp.inf, 2.0]])
  _close(jl.entropy(x, reduction="none"), _entropy(np.array([[0.0, 1.0, -np.inf], [-np.inf, -np.inf, 2.0]])), 1e-6)
  g = jax.grad(jl.confidence_penalty)(x, jnp.array([0, 2]))
  assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[:, :][np.isinf(np.asarray(x))] == 0)
  # a target of probability 0 costs -log 0 = +inf, as cross_entropy (not the 0 of a zeroed log-probability)
  assert float(jl.confidence_penalty(x, jnp.array([2, 0]), reduction="none")[1]) == np.inf
  assert float(jl.cross_entropy(x, jnp.array([2, 0]), reduction="none")[1]) == np.inf


def _confidence_accuracy(x, y):
  p = _softmax(x)
  return p.max(-1), (p.argmax(-1) == y).astype(float)


def ref_soft_binned_ece(x, y, valid, bins, temperature):
  """Karandikar et al. 2021, SB-ECE (p = 1): soft memberships u_b(c) = softmax_b(-(c - xi_b)^2 / T), per set."""
  c, a = _confidence_accuracy(x, y)
  centres = (np.arange(bins) + 0.5) / bins
  out = np.zeros(x.shape[:-2])
  for index in np.ndindex(*out.shape):
    v = valid[index]
    ci, ai = c[index][v], a[index][v]
    if not v.any():
      continue
    logits = -((ci[:, None] - centres) ** 2) / temperature
    u = np.exp(logits - logits.max(1, keepdims=True))
    u /= u.sum(1, keepdims=True)
    size = u.sum(0)
    conf = (u * ci[:, None]).sum(0) / size
    acc = (u * ai[:, None]).sum(0) / size
    out[index] = np.sum(size / len(ci) * np.abs(acc - conf))  # the paper's form: sum_b |S_b|/N |A_b - C_b|
  return out


def exact_ece(confidence, correct, bins):
  """Equal-width ECE, bins (b/M, (b+1)/M] as torchmetrics (the confidences below avoid every edge)."""
  which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
  return sum(abs(np.sum(correct[which == b] - confidence[which == b])) for b in range(bins)) / len(confidence)


def ref_mmce(x, y, valid, bandwidth):
  """Kumar et al. 2018, MMCE with the Laplacian kernel k(r, r') = exp(-|r - r'| / h), per set."""
  c, a = _confidence_accuracy(x, y)
  out = np.zeros(x.shape[:-2])
  for index in np.ndindex(*out.shape):
    v = valid[index]
    ci, ai = c[index][v], a[index][v]
    if not v.any():
      continue
    kernel = np.exp(-np.abs(ci[:, None] - ci[None, :]) / bandwidth)
    out[index] = np.sqrt(np.sum(np.outer(ai - ci, ai - ci) * kernel) / len(ci) ** 2)
  return out


@pytest.mark.parametrize(
  "fn, ref, kw",
  [
    (jl.soft_binned_ece, lambda x, y, v: ref_soft_binned_ece(x, y, v, 6, 0.02), {"bins": 6, "temperature": 0.02}),
    (jl.mmce, lambda x, y, v: ref_mmce(x, y, v, 0.3), {"bandwidth": 0.3}),
  ],
  ids=["soft_binned_ece", "mmce"],
)
def test_set_losses_match_the_papers_formulas_values_and_gradients(fn, ref, kw):
  with jax.enable_x64(True):
    expected = ref(SET_LOGITS, SET_LABELS, SET_WHERE)
    _close(fn(SET_LOGITS, SET_LABELS, where=SET_WHERE, reduction="none", **kw), expected)
    weights = np.array([0.5, 1.0, 2.0])
    _close(fn(SET_LOGITS, SET_LABELS, where=SET_WHERE, weights=weights, **kw), np.sum(weights * expected) / 3.5)
    grad = jax.grad(lambda x: fn(x, SET_LABELS, where=SET_WHERE, reduction="sum", **kw))(SET_LOGITS)
    numeric = numeric_grad(lambda x: ref(x, SET_LABELS, SET_WHERE).sum(), SET_LOGITS)
    _close(grad, numeric, rtol=1e-5, atol=1e-7)


def test_soft_binned_ece_converges_to_the_exact_ece():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(200, 3)) * 2
  y = rng.integers(0, 3, size=200)
  c, a = _confidence_accuracy(x, y)
  keep = np.abs(c * 10 - np.round(c * 10)) > 0.01  # away from the bin edges of 10 bins
  x, y, c, a = x[keep], y[keep], c[keep], a[keep]
  exact = exact_ece(c, a, 10)
  with jax.enable_x64(True):
    errors = [abs(float(jl.soft_binned_ece(x, y, bins=10, temperature=t)) - exact) for t in (1e-2, 1e-3, 1e-6)]
  assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-9, errors


def test_set_losses_edges_ties_empty_and_perfect():
  y = jnp.array([0, 1, 2, 0])
  tied = jnp.zeros((4, 3))  # every class tied, every confidence equal
  for fn in (jl.soft_binned_ece, jl.mmce):
    for x in (tied, jnp.full((4, 3), 1e4) * jnp.eye(3)[y], jnp.where(jnp.eye(3)[y] > 0, 0.0, -jnp.inf)):
      g = jax.grad(fn)(x, y)
      assert np.all(np.isfinite(g)), fn
    nothing = jnp.zeros(4, bool)
    assert float(fn(jnp.full((4, 3), jnp.nan), y, where=nothing)) == 0.0
    assert np.all(np.asarray(jax.grad(fn)(jnp.full((4, 3), jnp.nan), y, where=nothing)) == 0)
  # Confident and right everywhere: perfectly calibrated, loss and gradient 0 (sqrt and |.| at 0).
  perfect = jnp.where(jnp.eye(3)[y] > 0, 0.0, -jnp.inf)
  assert float(jl.mmce(perfect, y)) == 0.0 and np.all(np.asarray(jax.grad(jl.mmce)(perfect, y)) == 0)
  assert float(jl.soft_binned_ece(perfect, y)) == 0.0


def test_bad_options_are_errors():
  with pytest.raises(ValueError, match=r"jaxloss\.soft_binned_ece: `bins` must be an int >= 1, got 0"):
    jl.soft_binned_ece(SET_LOGITS, SET_LABELS, bins=0)
  with pytest.raises(ValueError, match=r"jaxloss\.soft_binned_ece: `temperature` must be a positive number"):
    jl.soft_binned_ece(SET_LOGITS, SET_LABELS, temperature=0.0)
  with pytest.raises(ValueError, match=r"jaxloss\.mmce: `bandwidth` must be a positive number"):
    jl.mmce(SET_LOGITS, SET_LABELS, bandwidth=-1.0)
  with pytest.raises(ValueError, match=r"jaxloss\.mmce: `logits` must have shape \[\.\.\., N, C\]"):
    jl.mmce(LOGITS[0], LABELS[0])
