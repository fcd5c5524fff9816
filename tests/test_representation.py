"""Representation-learning losses against NumPy float64 references written from the papers (CLIP's and
SigLIP's pseudo-code, SupCon's equation 2, ...): values, gradients of the embeddings and of the learned
temperatures, biases and margins (central differences of the reference), masks, edges and errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss as jl
from registry import numeric_grad


def _rng(seed=0):
  return np.random.default_rng(seed)


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
    expected = numeric_grad(lambda x, k=k: ref([*arrays[:k], x, *arrays[k + 1 :]], values), arrays[k])
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


# Angular margins: the angle form (general) and InsightFace's ArcFace form (cos(t + m) = c cos m - s sin m).
def ref_angular_margin(e, w, labels, scale=64.0, m1=1.0, m2=0.5, m3=0.0):
  cosine = _unit(e) @ _unit(w).T
  out = []
  for c, y in zip(cosine, labels, strict=True):
    theta = np.arccos(np.clip(c[y], -1, 1))
    psi = c[y] - m2 * np.sin(m2) - m3 if m1 * theta + m2 > np.pi else np.cos(m1 * theta + m2) - m3
    logits = scale * c.copy()
    logits[y] = scale * psi
    out.append(-_log_softmax(logits)[y])
  return np.mean(out)


def ref_arcface(e, w, labels, scale=64.0, margin=0.5):
  """InsightFace's ArcFace (CombinedMarginLoss with m1 = 1, m3 = 0, easy_margin=False)."""
  cosine = _unit(e) @ _unit(w).T
  c = cosine[np.arange(len(labels)), labels]
  with_margin = c * np.cos(margin) - np.sqrt(1 - c * c) * np.sin(margin)
  target = np.where(c > np.cos(np.pi - margin), with_margin, c - np.sin(np.pi - margin) * margin)
  logits = scale * cosine
  logits[np.arange(len(labels)), labels] = scale * target
  return np.mean(-_log_softmax(logits)[np.arange(len(labels)), labels])


def ref_cosface(e, w, labels, scale=64.0, margin=0.35):
  cosine = _unit(e) @ _unit(w).T
  logits = scale * (cosine - margin * np.eye(w.shape[0])[labels])
  return np.mean(-_log_softmax(logits)[np.arange(len(labels)), labels])


HEAD_LABELS = np.array([0, 2, 1, 2, 0, 1, 2])


def _head_inputs(seed):
  rng = _rng(seed)
  w = rng.normal(size=(3, 4))
  e = rng.normal(size=(7, 4))
  e[1] = -2 * w[2]  # theta = pi: past the threshold for any m2 > 0
  return e, w


@pytest.mark.parametrize(
  "fn, reference, options",
  [
    (jl.angular_margin, ref_angular_margin, {"scale": 4.0, "m1": 1.3, "m2": 0.2, "m3": 0.1}),
    (jl.arcface, ref_arcface, {"scale": 6.0, "margin": 0.5}),
    (jl.cosface, ref_cosface, {"scale": 6.0, "margin": 0.35}),
  ],
  ids=["angular_margin", "arcface", "cosface"],
)
def test_angular_margins_match_insightface_forms(fn, reference, options):
  e, w = _head_inputs(7)
  e[1] += 0.3  # near, not at, theta = pi: the FD reference is smooth there
  _check(
    lambda x, c, **o: fn(x, c, HEAD_LABELS, **o), lambda x, c, **o: reference(x, c, HEAD_LABELS, **o), [e, w], options
  )


def test_angular_margin_gradient_is_exact_at_theta_zero_and_pi():
  w = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
  e = np.array([[2.0, 0.0, 0.0], [-3.0, 0.0, 0.0]])  # on class 0's centre, and opposite it
  labels = np.array([0, 0])
  with jax.enable_x64(True):
    for m2 in (0.5, 0.0):
      f = lambda x, m2=m2: jl.angular_margin(x, w, labels, scale=2.0, m1=1.5, m2=m2, reduction="sum")
      grad = np.asarray(jax.grad(f)(jnp.asarray(e)))
      tangent = jax.jvp(f, (jnp.asarray(e),), (jnp.ones_like(jnp.asarray(e)),))[1]
      # The target cosine is stationary there: only class 1's cosine moves, along e_2, by (1 / |e|) its softmax.
      cos1 = 0.0
      for row, (x, sign) in enumerate(zip(e, (1, -1), strict=True)):
        theta = 0.0 if sign > 0 else np.pi
        psi = np.cos(1.5 * theta + m2) if 1.5 * theta + m2 <= np.pi else sign - m2 * np.sin(m2)
        p1 = 1 / (1 + np.exp(2.0 * (psi - cos1)))
        np.testing.assert_allclose(grad[row], [0.0, 2.0 * p1 / np.linalg.norm(x), 0.0], rtol=1e-12, atol=1e-15)
      np.testing.assert_allclose(tangent, np.sum(grad), rtol=1e-12)
      assert np.all(np.isfinite(np.asarray(jax.hessian(f)(jnp.asarray(e)))))


# Circle: keras 3's `circle` transliterated (on normalised embeddings), mean over anchors with loss > 0.
def ref_circle(e, labels, margin=0.25, gamma=256.0):
  unit = _unit(e)
  distance = np.maximum(1 - unit @ unit.T, 0)
  same = labels[:, None] == labels[None, :]
  positive = same & ~np.eye(len(labels), dtype=bool)
  negative = ~same
  pos_weights = np.maximum((margin + distance) * positive, 0)
  neg_weights = np.maximum((1 + margin - distance) * negative, 0)
  pos = np.where(positive, -gamma * pos_weights * (margin - distance), -np.inf)
  neg = np.where(negative, gamma * neg_weights * (1 - margin - distance), -np.inf)
  with np.errstate(divide="ignore"):
    p_loss = np.log(np.sum(np.exp(pos), axis=1))
    n_loss = np.log(np.sum(np.exp(neg), axis=1))
  loss = np.logaddexp(0, p_loss + n_loss)
  return np.mean(loss[loss > 0])


def test_circle_matches_keras():
  e = _rng(8).normal(size=(8, 3))
  labels = np.array([0, 0, 0, 1, 1, 2, 2, 3])  # class 3 has one member: no positives
  _check(
    lambda x, **o: jl.circle(x, labels, **o),
    lambda x, **o: ref_circle(x, labels, **o),
    [e],
    {"margin": 0.3, "gamma": 4.0},
  )
  with jax.enable_x64(True):
    np.testing.assert_allclose(jl.circle(e, labels), ref_circle(e, labels), rtol=1e-10)


# Multi-similarity: the authors' loop (research-ms-loss), self-pairs excluded by index.
def ref_multi_similarity(e, labels, alpha=2.0, beta=50.0, base=0.5, epsilon=0.1):
  s = _unit(e) @ _unit(e).T
  total = 0.0
  for i in range(len(e)):
    pos_pair = s[i][(labels == labels[i]) & (np.arange(len(e)) != i)]
    neg_pair = s[i][labels != labels[i]]
    if len(pos_pair) == 0 or len(neg_pair) == 0:
      continue
    neg = neg_pair[neg_pair + epsilon > pos_pair.min()]
    pos = pos_pair[pos_pair - epsilon < neg_pair.max()]
    if len(neg) < 1 or len(pos) < 1:
      continue
    total += np.log(1 + np.sum(np.exp(-alpha * (pos - base)))) / alpha
    total += np.log(1 + np.sum(np.exp(beta * (neg - base)))) / beta
  return total / len(e)


def test_multi_similarity_matches_the_authors_code():
  e = _rng(9).normal(size=(10, 3))
  labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 3, 3])
  options = {"alpha": 2.0, "beta": 10.0, "base": 0.5, "epsilon": 0.1}
  _check(
    lambda x, **o: jl.multi_similarity(x, labels, **o),
    lambda x, **o: ref_multi_similarity(x, labels, **o),
    [e],
    options,
  )
  with jax.enable_x64(True):
    np.testing.assert_allclose(jl.multi_similarity(e, labels), ref_multi_similarity(e, labels), rtol=1e-10)


# Mined triplets: explicit loops over every triplet (B^3, fine at B = 9).
def ref_batch_triplet(e, labels, margin=1.0, mining="batch_all", p=2.0):
  d = np.linalg.norm(e[:, None] - e[None], ord=p, axis=-1)
  n = len(e)
  positives = [[j for j in range(n) if j != i and labels[j] == labels[i]] for i in range(n)]
  negatives = [[k for k in range(n) if labels[k] != labels[i]] for i in range(n)]
  if mining == "batch_all":
    losses = [max(0.0, d[a, q] - d[a, k] + margin) for a in range(n) for q in positives[a] for k in negatives[a]]
    nonzero = [v for v in losses if v > 0]
    return np.sum(nonzero) / len(nonzero) if nonzero else 0.0
  if mining == "batch_hard":
    losses = [
      max(0.0, max(d[a, q] for q in positives[a]) - min(d[a, k] for k in negatives[a]) + margin)
      for a in range(n)
      if positives[a] and negatives[a]
    ]
    return np.mean(losses)
  losses = []  # semi_hard, as tfa.losses.triplet_semihard_loss
  for a in range(n):
    if not negatives[a]:
      continue
    for q in positives[a]:
      farther = [d[a, k] for k in negatives[a] if d[a, k] > d[a, q]]
      chosen = min(farther) if farther else max(d[a, k] for k in negatives[a])
      losses.append(max(0.0, d[a, q] - chosen + margin))
  return np.mean(losses)


TRIPLET_LABELS = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3])  # class 3 has one member


@pytest.mark.parametrize("mining, p", [("batch_all", 2.0), ("batch_hard", 2.0), ("semi_hard", 2.0), ("batch_all", 1.5)])
def test_batch_triplet_matches_explicit_triplets(mining, p):
  e = _rng(10).normal(size=(9, 3))
  _check(
    lambda x, **o: jl.batch_triplet(x, TRIPLET_LABELS, mining=mining, p=p, **o),
    lambda x, **o: ref_batch_triplet(x, TRIPLET_LABELS, mining=mining, p=p, **o),
    [e],
    {"margin": 1.5},
  )


def test_batch_triplet_duplicates_have_distance_zero_and_gradient_zero():
  e = np.array([[1.0, 2.0], [1.0, 2.0], [0.0, 0.5], [0.5, 0.0]])  # 0 and 1: duplicates of one class
  labels = np.array([0, 0, 1, 1])
  with jax.enable_x64(True):
    for mining in ("batch_all", "batch_hard", "semi_hard"):
      for p in (2.0, 1.0):
        f = lambda x, mining=mining, p=p: jl.batch_triplet(x, labels, mining=mining, p=p, margin=3.0)
        np.testing.assert_allclose(f(jnp.asarray(e)), ref_batch_triplet(e, labels, 3.0, mining, p), rtol=1e-12)
        grad = np.asarray(jax.grad(f)(jnp.asarray(e)))
        # d(e0, e1) = 0 is a cone: central differences see its minimum-norm 0, as the gradient must; the
        # negatives 2 and 3 are tied for e0 and e1 and share the gradient.
        expected = numeric_grad(lambda x, mining=mining, p=p: ref_batch_triplet(x, labels, 3.0, mining, p), e)
        np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-8)
