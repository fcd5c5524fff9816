"""Representation-learning losses against NumPy float64 references written from the papers (CLIP's and
SigLIP's pseudo-code, SupCon's equation 2, ...): values, gradients of the embeddings and of the learned
temperatures, biases and margins (central differences of the reference), masks, edges and errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss as jl


def _rng(seed=0):
  return np.random.default_rng(seed)


def _numeric_grad(f, x, step=1e-6):
  """Central differences of the NumPy reference ``f`` (a scalar) at ``x``, float64."""
  x = np.asarray(x, np.float64)
  out = np.zeros_like(x)
  for index in np.ndindex(x.shape):
    up, down = x.copy(), x.copy()
    up[index] += step
    down[index] -= step
    out[index] = (f(up) - f(down)) / (2 * step)
  return out


def _check(fn, reference, arrays, options, **static):
  """``fn(*arrays, **options)`` (mean) and its gradients in every array and option == the reference's, 1e-6 f64."""
  names = sorted(options)
  values = [float(options[n]) for n in names]

  def ref(arrays, values):
    return reference(*arrays, **dict(zip(names, values, strict=True)), **static)

  with jax.enable_x64(True):

    def f(arrays, values):
      return fn(*arrays, **dict(zip(names, values, strict=True)), **static)

    jarrays = [jnp.asarray(a) for a in arrays]
    value, (grads, option_grads) = jax.value_and_grad(f, argnums=(0, 1))(jarrays, [jnp.asarray(v) for v in values])
  np.testing.assert_allclose(value, ref(arrays, values), rtol=1e-6, atol=1e-9)
  for k, g in enumerate(grads):
    expected = _numeric_grad(lambda x, k=k: ref([*arrays[:k], x, *arrays[k + 1 :]], values), arrays[k])
    np.testing.assert_allclose(g, expected, rtol=1e-6, atol=1e-7)
  for k, g in enumerate(option_grads):
    step = 1e-6 * max(1.0, abs(values[k]))
    up = ref(arrays, [v + (step if j == k else 0) for j, v in enumerate(values)])
    down = ref(arrays, [v - (step if j == k else 0) for j, v in enumerate(values)])
    np.testing.assert_allclose(g, (up - down) / (2 * step), rtol=1e-6, atol=1e-7)


def _unit(x):
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), np.finfo(np.float64).eps)


def _log_softmax(z, axis=-1):
  z = z - z.max(axis=axis, keepdims=True)
  return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


# CLIP: the paper's pseudo-code, per set.
def ref_clip(images, texts, temperature=0.07, label_smoothing=0.0, normalize=True):
  def one(u, v):
    if normalize:
      u, v = _unit(u), _unit(v)
    logits = u @ v.T / temperature
    n = len(u)
    target = (1 - label_smoothing) * np.eye(n) + label_smoothing / n
    loss_i = -np.sum(target * _log_softmax(logits, axis=1), axis=1)
    loss_t = -np.sum(target * _log_softmax(logits, axis=0), axis=0)
    return (loss_i + loss_t) / 2  # per pair; the mean is (mean(loss_i) + mean(loss_t)) / 2

  per_pair = np.stack(
    [
      one(u, v)
      for u, v in zip(images.reshape(-1, *images.shape[-2:]), texts.reshape(-1, *texts.shape[-2:]), strict=True)
    ]
  )
  return per_pair.reshape(images.shape[:-1]).mean()


@pytest.mark.parametrize("normalize", [True, False])
def test_clip_matches_the_paper_pseudo_code(normalize):
  rng = _rng(1)
  images = rng.normal(size=(2, 5, 3))
  texts = images + 0.7 * rng.normal(size=images.shape)
  options = {"temperature": 0.3, "label_smoothing": 0.1}
  _check(jl.clip, ref_clip, [images, texts], options, normalize=normalize)


def test_clip_per_pair_where_and_learned_log_scale():
  rng = _rng(2)
  images, texts = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
  keep = np.array([True, True, False, True, True, False])
  poisoned = images.copy()
  poisoned[~keep] = np.nan
  with jax.enable_x64(True):
    masked = jl.clip(poisoned, texts, where=keep, reduction="none")
    grad = jax.grad(lambda x: jl.clip(x, texts, where=keep))(jnp.asarray(poisoned))
    # CLIP learns log_scale with temperature = exp(-log_scale): d/dlog_scale = -temperature * d/dtemperature.
    log_scale = np.log(1 / 0.07)
    g = jax.grad(lambda s: jl.clip(images, texts, temperature=jnp.exp(-s)))(jnp.asarray(log_scale))
  expected = np.zeros(6)
  expected[keep] = _clip_pairs(images[keep], texts[keep])
  np.testing.assert_allclose(masked, expected, rtol=1e-10)
  assert np.all(np.asarray(grad)[~keep] == 0) and np.all(np.isfinite(np.asarray(grad)))
  step = 1e-6
  numeric = ref_clip(images, texts, np.exp(-(log_scale + step))) - ref_clip(images, texts, np.exp(-(log_scale - step)))
  np.testing.assert_allclose(g, numeric / (2 * step), rtol=1e-6)


def _clip_pairs(u, v, temperature=0.07):
  u, v = _unit(u), _unit(v)
  logits = u @ v.T / temperature
  return -(np.diag(_log_softmax(logits, 1)) + np.diag(_log_softmax(logits, 0))) / 2


# SigLIP: the paper's pseudo-code (t = exp(t') applied as a multiplier, labels 2 I - 1).
def ref_siglip(x, y, temperature=10.0, bias=-10.0):
  def one(u, v):
    logits = _unit(u) @ _unit(v).T * temperature + bias
    labels = 2 * np.eye(len(u)) - 1
    return -np.sum(-np.logaddexp(0, -labels * logits)) / len(u)  # log_sigmoid(z) = -logaddexp(0, -z)

  return np.mean([one(u, v) for u, v in zip(x.reshape(-1, *x.shape[-2:]), y.reshape(-1, *y.shape[-2:]), strict=True)])


def test_siglip_matches_the_paper_pseudo_code():
  rng = _rng(3)
  x = rng.normal(size=(2, 5, 3))
  y = x + 0.5 * rng.normal(size=x.shape)
  _check(jl.siglip, ref_siglip, [x, y], {"temperature": 4.0, "bias": -2.0})


def test_siglip_defaults_and_where():
  rng = _rng(4)
  x, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
  keep = np.array([True, False, True, True, True])
  with jax.enable_x64(True):
    np.testing.assert_allclose(jl.siglip(x, y), ref_siglip(x, y), rtol=1e-12)
    masked = jl.siglip(x, y, where=keep, reduction="sum")
  np.testing.assert_allclose(masked, ref_siglip(x[keep], y[keep]) * keep.sum(), rtol=1e-12)


# SupCon, L_out (Khosla et al., equation 2), by explicit loops.
def ref_supcon_per_anchor(e, labels, temperature=0.1):
  s = _unit(e) @ _unit(e).T / temperature
  out = np.zeros(len(e))
  for i in range(len(e)):
    others = [a for a in range(len(e)) if a != i]
    positives = [p for p in others if labels[p] == labels[i]]
    if positives:
      log_denominator = np.log(sum(np.exp(s[i, a]) for a in others))
      out[i] = -np.mean([s[i, p] - log_denominator for p in positives])
  return out


def ref_supcon(e, labels, temperature=0.1):
  losses, counted = [], []
  for x, y in zip(e.reshape(-1, *e.shape[-2:]), labels.reshape(-1, labels.shape[-1]), strict=True):
    losses.append(ref_supcon_per_anchor(x, y, temperature))
    counted.append([np.sum(y == label) > 1 for label in y])
  return np.sum(losses) / np.sum(counted)  # anchors without positives leave the mean


def test_supcon_matches_equation_2_with_one_member_classes():
  rng = _rng(5)
  e = rng.normal(size=(2, 6, 3))
  labels = np.array([[0, 0, 0, 1, 1, 2], [0, 1, 0, 1, 2, 3]])  # classes 2 and 3 have one member
  _check(lambda x, **o: jl.supcon(x, labels, **o), lambda x, **o: ref_supcon(x, labels, **o), [e], {"temperature": 0.5})


def test_supcon_where_removes_members_and_lone_anchors_leave_the_mean():
  rng = _rng(6)
  e = rng.normal(size=(6, 3))
  labels = np.array([0, 0, 1, 1, 2, 2])
  keep = np.array([True, True, True, False, True, True])
  poisoned = e.copy()
  poisoned[~keep] = np.inf
  with jax.enable_x64(True):
    out = jl.supcon(poisoned, labels, where=keep, reduction="none")
    mean = jl.supcon(poisoned, labels, where=keep)
    grad = np.asarray(jax.grad(lambda x: jl.supcon(x, labels, where=keep))(jnp.asarray(poisoned)))
  expected = np.zeros(6)
  expected[keep] = ref_supcon_per_anchor(e[keep], labels[keep])
  np.testing.assert_allclose(out, expected, rtol=1e-12)
  np.testing.assert_allclose(mean, np.mean(expected[[0, 1, 4, 5]]), rtol=1e-12)  # anchor 2 lost its positive
  assert np.all(np.isfinite(grad)) and np.all(grad[~keep] == 0)


# Edges of the set losses: zero and duplicate embeddings, one-member sets, all masked.
def test_set_losses_are_finite_on_zero_and_duplicate_embeddings():
  sets = jnp.stack([jnp.zeros((4, 3)), jnp.ones((4, 3))])  # a set of zero embeddings, one of duplicates
  labels = jnp.array([[0, 0, 1, 1]] * 2)
  for fn in (lambda x: jl.clip(x, sets[::-1]), lambda x: jl.siglip(x, sets[::-1]), lambda x: jl.supcon(x, labels)):
    value, grad = jax.value_and_grad(fn)(sets)
    assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad)))
  # One pair: its own text is the only candidate. All masked: 0.
  assert float(jl.clip(jnp.ones((1, 3)), jnp.ones((1, 3)))) == 0.0
  nothing = jnp.zeros((2, 4), bool)
  assert float(jl.clip(sets, sets, where=nothing)) == 0.0
  assert float(jl.siglip(sets, sets, where=nothing)) == 0.0
  assert float(jl.supcon(sets, labels, where=nothing)) == 0.0


# Trace-time errors.
@pytest.mark.parametrize(
  "call, error, pattern",
  [
    (
      lambda: jl.clip(jnp.ones((4,)), jnp.ones((4,))),
      ValueError,
      r"jaxloss\.clip: `image_embeddings` must have shape \[\.\.\., B, D\]",
    ),
    (lambda: jl.clip(jnp.ones((4, 3)), jnp.ones((4, 2))), ValueError, r"same shape"),
    (
      lambda: jl.clip(jnp.ones((4, 3)), jnp.ones((4, 3)), temperature=0.0),
      ValueError,
      r"`temperature` must be a positive number",
    ),
    (
      lambda: jl.clip(jnp.ones((4, 3)), jnp.ones((4, 3)), label_smoothing=2.0),
      ValueError,
      r"`label_smoothing` must be in \[0, 1\]",
    ),
    (
      lambda: jl.siglip(jnp.ones((4, 3)), jnp.ones((4, 3)), bias=np.nan),
      ValueError,
      r"jaxloss\.siglip: `bias` must be a finite number",
    ),
    (lambda: jl.supcon(jnp.ones((4, 3)), jnp.ones(4)), TypeError, r"jaxloss\.supcon: `labels` must be an integer"),
    (lambda: jl.supcon(jnp.ones((4, 3)), jnp.zeros(3, int)), ValueError, r"`labels` must have shape \[\.\.\., B\]"),
  ],
)
def test_bad_input_fails_at_trace_time(call, error, pattern):
  with pytest.raises(error, match=pattern):
    call()
