"""CTC: values and gradients against torch.nn.functional.ctc_loss in float64 (random lengths, repeated labels,
blank anywhere), against autodiff of a brute-force reference that sums over every alignment, against finite
differences; infeasible alignments, forward mode, errors and the checked mode."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from jax.experimental import checkify
from jax.test_util import check_grads

import jaxloss as jl

REDUCTIONS = ["mean", "sum", "none"]


def _problem(rng, batch, steps, classes, n, blank, shortest=1):
  """Random logits, labels (never the blank, with repeats) and lengths."""
  logits = rng.normal(size=(*batch, steps, classes))
  labels = rng.integers(0, classes - 1, size=(*batch, n))
  labels = labels + (labels >= blank)
  repeat = rng.uniform(size=(*batch, n - 1)) < 0.4
  labels[..., 1:] = np.where(repeat, labels[..., :-1], labels[..., 1:])
  logit_lengths = rng.integers(shortest, steps + 1, size=batch)
  label_lengths = rng.integers(0, n + 1, size=batch)
  return logits, labels, logit_lengths, label_lengths


def _needed_steps(labels, length):
  """The fewest time steps that can emit ``labels[:length]``: one per label, plus a blank between repeats."""
  used = labels[:length]
  return length + int(np.sum(used[1:] == used[:-1]))


def _torch_ctc(logits, labels, logit_lengths, label_lengths, blank, reduction="none", zero_infinity=False):
  """torch's loss and gradient on ``[..., T, K]`` logits (flattened to torch's time-major layout)."""
  batch = logits.shape[:-2]
  x = torch.tensor(logits.reshape(-1, *logits.shape[-2:]), dtype=torch.float64, requires_grad=True)
  loss = F.ctc_loss(
    torch.log_softmax(x, -1).transpose(0, 1),
    torch.tensor(labels.reshape(-1, labels.shape[-1])),
    torch.tensor(logit_lengths.reshape(-1)),
    torch.tensor(label_lengths.reshape(-1)),
    blank=blank,
    reduction=reduction,
    zero_infinity=zero_infinity,
  )
  loss.sum().backward()
  value = loss.detach().numpy()
  return (value.reshape(batch) if reduction == "none" else value), x.grad.numpy().reshape(logits.shape)


def _ours(logits, labels, logit_lengths, label_lengths, **options):
  with jax.enable_x64(True):

    def total(x):
      value = jl.ctc(x, labels, logit_lengths=logit_lengths, label_lengths=label_lengths, **options)
      return jnp.sum(value), value

    # The value comes out of the gradient's forward pass: one program fewer than a separate call.
    (_, value), grad = jax.value_and_grad(total, has_aux=True)(jnp.asarray(logits))
    return np.asarray(value), np.asarray(grad)


@pytest.mark.parametrize("blank", [0, 3, 5])
@pytest.mark.parametrize("batch", [(5,), (2, 3)], ids=str)
def test_matches_torch_per_sequence(blank, batch):
  rng = np.random.default_rng(blank + len(batch))
  logits, labels, logit_lengths, label_lengths = _problem(rng, batch, steps=12, classes=6, n=5, blank=blank, shortest=9)
  value, grad = _ours(logits, labels, logit_lengths, label_lengths, blank=blank, reduction="none")
  t_value, t_grad = _torch_ctc(logits, labels, logit_lengths, label_lengths, blank)
  assert np.all(np.isfinite(t_value)), "the lengths here always admit an alignment"
  np.testing.assert_allclose(value, t_value, rtol=1e-6, atol=1e-12)
  np.testing.assert_allclose(grad, t_grad, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_reductions_and_weights_match_torch(reduction):
  rng = np.random.default_rng(7)
  logits, labels, logit_lengths, label_lengths = _problem(rng, (6,), steps=10, classes=5, n=4, blank=0, shortest=8)
  per_sequence, per_sequence_grad = _torch_ctc(logits, labels, logit_lengths, label_lengths, 0)
  weights = rng.uniform(0.5, 2.0, 6)
  value, grad = _ours(logits, labels, logit_lengths, label_lengths, reduction=reduction, weights=weights)
  scale = {"none": weights, "sum": weights, "mean": weights / np.sum(weights)}[reduction]
  expected = {"none": weights * per_sequence, "sum": np.sum(weights * per_sequence)}.get(
    reduction, np.sum(weights * per_sequence) / np.sum(weights)
  )
  np.testing.assert_allclose(value, expected, rtol=1e-6)
  # The per-sequence torch gradients are those of each sequence's loss (the rows are independent).
  np.testing.assert_allclose(grad, scale[:, None, None] * per_sequence_grad, rtol=1e-6, atol=1e-12)


def test_torch_length_normalised_mean_recipe():
  # The docstring's recipe for torch's default reduction="mean".
  rng = np.random.default_rng(8)
  logits, labels, logit_lengths, label_lengths = _problem(rng, (5,), steps=10, classes=5, n=4, blank=0, shortest=8)
  label_lengths[0] = 0
  t_value, t_grad = _torch_ctc(logits, labels, logit_lengths, label_lengths, 0, reduction="mean")

  def torch_mean(x):
    per_sequence = jl.ctc(x, labels, logit_lengths=logit_lengths, label_lengths=label_lengths, reduction="none")
    return jnp.mean(per_sequence / jnp.maximum(label_lengths, 1).astype(per_sequence.dtype))

  with jax.enable_x64(True):
    value, grad = jax.value_and_grad(torch_mean)(jnp.asarray(logits))
  np.testing.assert_allclose(value, t_value, rtol=1e-6)
  np.testing.assert_allclose(grad, t_grad, rtol=1e-6, atol=1e-12)


def test_infeasible_alignments():
  rng = np.random.default_rng(9)
  logits, labels, logit_lengths, label_lengths = _problem(rng, (8,), steps=6, classes=4, n=4, blank=1)
  labels[:4, :2] = 2  # a repeat needs a blank in between
  logit_lengths[:4], label_lengths[:4] = 2, 2  # 3 steps needed, 2 given
  feasible = np.array([_needed_steps(y, n) <= t for y, n, t in zip(labels, label_lengths, logit_lengths, strict=True)])
  assert not feasible[:4].any() and feasible.any()
  value, grad = _ours(logits, labels, logit_lengths, label_lengths, blank=1, reduction="none")
  t_value, t_grad = _torch_ctc(logits, labels, logit_lengths, label_lengths, 1)
  np.testing.assert_array_equal(np.isinf(value), ~feasible)
  np.testing.assert_allclose(value[feasible], t_value[feasible], rtol=1e-6)
  assert np.all(value[~feasible] == np.inf) and np.all(t_value[~feasible] == np.inf)
  # No alignment: the loss is +inf whatever the logits, so its gradient is 0 (torch's is the softmax).
  assert np.all(grad[~feasible] == 0)
  np.testing.assert_allclose(grad[feasible], t_grad[feasible], rtol=1e-6, atol=1e-12)

  value, grad = _ours(logits, labels, logit_lengths, label_lengths, blank=1, zero_infinity=True, reduction="sum")
  t_value, t_grad = _torch_ctc(logits, labels, logit_lengths, label_lengths, 1, reduction="sum", zero_infinity=True)
  np.testing.assert_allclose(value, t_value, rtol=1e-6)
  np.testing.assert_allclose(grad, t_grad, rtol=1e-6, atol=1e-12)
  assert np.all(grad[~feasible] == 0)


def test_float32_gradient_stays_accurate_on_long_sequences():
  # Log-alphas reach thousands here; the occupancy is renormalised per step so their rounding cancels.
  rng = np.random.default_rng(15)
  logits, labels, _, _ = _problem(rng, (2,), steps=400, classes=8, n=80, blank=0)
  logit_lengths, label_lengths = np.array([400, 350]), np.array([80, 70])
  _, t_grad = _torch_ctc(logits, labels, logit_lengths, label_lengths, 0)
  kw = {"logit_lengths": logit_lengths, "label_lengths": label_lengths, "reduction": "sum"}
  grad = jax.grad(lambda x: jl.ctc(x, labels, **kw))(jnp.asarray(logits, jnp.float32))
  np.testing.assert_allclose(grad, t_grad, atol=1e-4)


def test_no_labels_is_all_blanks():
  # N = 0 (and T_b = 0): the only alignment emits the blank at every valid step.
  x = jnp.asarray(np.random.default_rng(14).normal(size=(3, 4, 3)), jnp.float32)
  logit_lengths = jnp.array([4, 2, 0])
  value = jl.ctc(
    x,
    jnp.zeros((3, 0), jnp.int32),
    logit_lengths=logit_lengths,
    label_lengths=jnp.zeros(3, jnp.int32),
    reduction="none",
  )
  blank = jax.nn.log_softmax(x)[..., 0]
  np.testing.assert_allclose(value, [-jnp.sum(blank[0]), -jnp.sum(blank[1, :2]), 0.0], rtol=1e-6)


# A brute-force reference: the log of the summed probability of every alignment that collapses to the labels.
def _alignments(steps, classes, labels, blank):
  """Every path of ``steps`` classes that collapses (merge repeats, drop blanks) to ``labels``."""
  paths = []
  for path in itertools.product(range(classes), repeat=steps):
    merged = [k for i, k in enumerate(path) if i == 0 or k != path[i - 1]]
    if [k for k in merged if k != blank] == list(labels):
      paths.append(path)
  return np.array(paths, dtype=np.int32).reshape(-1, steps)


def brute_force_ctc(logits, labels, logit_lengths, label_lengths, blank):
  """Per-sequence CTC by enumeration, differentiable by plain autodiff (tiny T and K only)."""
  out = []
  for x, y, t, n in zip(logits, labels, logit_lengths, label_lengths, strict=True):
    log_probs = jax.nn.log_softmax(x[:t], axis=-1)
    paths = _alignments(int(t), x.shape[-1], y[:n], blank)
    if len(paths) == 0:
      out.append(jnp.asarray(jnp.inf, x.dtype))
      continue
    path_log_probs = jnp.sum(log_probs[jnp.arange(int(t))[None, :], paths], axis=-1)
    out.append(-jax.nn.logsumexp(path_log_probs))
  return jnp.stack(out)


@pytest.mark.parametrize("blank", [0, 2])
def test_matches_autodiff_of_brute_force_reference(blank):
  rng = np.random.default_rng(10 + blank)
  logits, labels, logit_lengths, label_lengths = _problem(rng, (6,), steps=6, classes=3, n=3, blank=blank, shortest=5)
  labels[0], label_lengths[0] = [k for k in range(3) if k != blank][:1] * 3, 3  # a triple repeat: 5 steps needed
  with jax.enable_x64(True):
    x = jnp.asarray(logits)

    def ours(x):
      return jl.ctc(x, labels, logit_lengths=logit_lengths, label_lengths=label_lengths, blank=blank, reduction="none")

    @jax.jit  # one compilation per transformation; op by op, every per-sequence shape compiled its own ops
    def reference(x):
      return brute_force_ctc(x, labels, logit_lengths, label_lengths, blank)

    np.testing.assert_allclose(ours(x), reference(x), rtol=1e-10)
    weights = jnp.asarray(rng.uniform(0.5, 2.0, 6))
    np.testing.assert_allclose(
      jax.grad(lambda x: jnp.sum(weights * ours(x)))(x),
      jax.grad(lambda x: jnp.sum(weights * reference(x)))(x),
      rtol=1e-9,
      atol=1e-12,
    )
    # Forward mode works too, and agrees with the reference's.
    tangent = jnp.asarray(rng.normal(size=x.shape))
    np.testing.assert_allclose(jax.jvp(ours, (x,), (tangent,))[1], jax.jvp(reference, (x,), (tangent,))[1], rtol=1e-9)


def test_hessian_matches_brute_force_reference():
  rng = np.random.default_rng(11)
  logits, labels, logit_lengths, label_lengths = _problem(rng, (2,), steps=4, classes=3, n=2, blank=0, shortest=3)
  kw = {"logit_lengths": logit_lengths, "label_lengths": label_lengths}
  with jax.enable_x64(True):
    hessian = jax.hessian(lambda x: jl.ctc(x, labels, **kw, reduction="sum"))(jnp.asarray(logits))
    expected = jax.jit(jax.hessian(lambda x: jnp.sum(brute_force_ctc(x, labels, logit_lengths, label_lengths, 0))))(
      jnp.asarray(logits)
    )
  np.testing.assert_allclose(hessian, expected, rtol=1e-8, atol=1e-12)


def test_gradients_match_finite_differences():
  rng = np.random.default_rng(12)
  logits, labels, logit_lengths, label_lengths = _problem(rng, (3,), steps=7, classes=4, n=3, blank=0, shortest=6)
  with jax.enable_x64(True):

    def f(x):
      return jl.ctc(
        x, labels, logit_lengths=logit_lengths, label_lengths=label_lengths, weights=jnp.array([1.0, 2.0, 0.5])
      )

    check_grads(f, (jnp.asarray(logits),), order=1, modes=("fwd", "rev"))  # order 2: test_invariants


def test_half_precision_and_large_logits_stay_finite():
  rng = np.random.default_rng(13)
  logits, labels, logit_lengths, label_lengths = _problem(rng, (4,), steps=20, classes=6, n=5, blank=0, shortest=15)
  kw = {"logit_lengths": logit_lengths, "label_lengths": label_lengths}
  for x in (jnp.asarray(1e4 * logits, jnp.float32), jnp.asarray(logits, jnp.bfloat16)):
    value, grad = jax.value_and_grad(lambda x: jl.ctc(x, labels, **kw))(x)
    assert (
      value.dtype == jnp.float32 and np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad, np.float32)))
    )


@pytest.mark.parametrize(
  "call, error, pattern",
  [
    (
      lambda: jl.ctc(
        jnp.ones(4),
        jnp.ones((1, 2), jnp.int32),
        logit_lengths=jnp.ones(1, jnp.int32),
        label_lengths=jnp.ones(1, jnp.int32),
      ),
      ValueError,
      r"jaxloss\.ctc: `logits` must have shape \[\.\.\., T, K\] \(rank >= 2\), got logits\.shape=\(4,\)",
    ),
    (
      lambda: jl.ctc(
        jnp.ones((2, 5, 3)),
        jnp.ones((3, 2), jnp.int32),
        logit_lengths=jnp.ones(2, jnp.int32),
        label_lengths=jnp.ones(2, jnp.int32),
      ),
      ValueError,
      r"`labels` must have shape \[\.\.\., N\] with the batch dimensions of `logits` \(2,\), got labels\.shape=\(3, 2\)",  # noqa: E501
    ),
    (
      lambda: jl.ctc(
        jnp.ones((2, 5, 3)),
        jnp.ones((2, 2), jnp.int32),
        logit_lengths=jnp.ones(3, jnp.int32),
        label_lengths=jnp.ones(2, jnp.int32),
      ),
      ValueError,
      r"`logit_lengths` must have the batch shape of `logits` \(2,\), got logit_lengths\.shape=\(3,\)",
    ),
    (
      lambda: jl.ctc(
        jnp.ones((2, 5, 3)),
        jnp.ones((2, 2)),
        logit_lengths=jnp.ones(2, jnp.int32),
        label_lengths=jnp.ones(2, jnp.int32),
      ),
      TypeError,
      r"`labels` must be an integer array, got dtype float32",
    ),
    (
      lambda: jl.ctc(
        jnp.ones((2, 5, 3)),
        jnp.ones((2, 2), jnp.int32),
        logit_lengths=jnp.ones(2),
        label_lengths=jnp.ones(2, jnp.int32),
      ),
      TypeError,
      r"`logit_lengths` must be an integer array",
    ),
    (
      lambda: jl.ctc(
        jnp.ones((2, 5, 3)),
        jnp.ones((2, 2), jnp.int32),
        logit_lengths=jnp.ones(2, jnp.int32),
        label_lengths=jnp.ones(2, jnp.int32),
        blank=3,
      ),
      ValueError,
      r"`blank` must be an int in \[0, 3\) \(the number of classes\), got 3",
    ),
    (
      lambda: jl.ctc(
        jnp.ones((2, 5, 3)),
        jnp.ones((2, 2), jnp.int32),
        logit_lengths=jnp.ones(2, jnp.int32),
        label_lengths=jnp.ones(2, jnp.int32),
        zero_infinity=1,
      ),
      TypeError,
      r"`zero_infinity` must be a bool, got 1",
    ),
    (
      lambda: jl.ctc(
        jnp.ones((2, 5, 3)),
        jnp.ones((2, 2), jnp.int32),
        logit_lengths=jnp.ones(2, jnp.int32),
        label_lengths=jnp.ones(2, jnp.int32),
        weights=jnp.ones(5),
      ),
      ValueError,
      r"`weights` must broadcast to the shape of the per-example loss \(2,\)",
    ),
  ],
)
def test_bad_input_fails_at_trace_time(call, error, pattern):
  with pytest.raises(error, match=pattern):
    call()


LOGITS = jnp.zeros((2, 4, 3))
LABELS = jnp.array([[1, 2], [2, 2]])
LENGTHS = {"logit_lengths": jnp.array([4, 4]), "label_lengths": jnp.array([2, 2])}


@pytest.mark.parametrize(
  "call, pattern",
  [
    (
      lambda c: c(jl.ctc)(LOGITS, jnp.array([[1, 0], [2, 2]]), **LENGTHS),
      r"jaxloss\.ctc: `labels` must be class indices in \[0, 3\) other than the blank 0, found 0",
    ),
    (lambda c: c(jl.ctc)(LOGITS, jnp.array([[1, 2], [7, 2]]), **LENGTHS), r"`labels` must be class indices .* found 7"),
    (
      lambda c: c(jl.ctc)(LOGITS, LABELS, logit_lengths=jnp.array([4, 5]), label_lengths=jnp.array([2, 2])),
      r"`logit_lengths` must be in \[0, 4\], found 5",
    ),
    (
      lambda c: c(jl.ctc)(LOGITS, LABELS, logit_lengths=jnp.array([4, 4]), label_lengths=jnp.array([-1, 2])),
      r"`label_lengths` must be in \[0, 2\], found -1",
    ),
    (lambda c: c(jl.ctc)(LOGITS.at[1, 2, 0].set(jnp.nan), LABELS, **LENGTHS), r"`logits` contains NaN"),
  ],
)
def test_checked_reports_invalid_values(call, pattern):
  with pytest.raises(checkify.JaxRuntimeError, match=pattern):
    call(jl.checked)
  call(lambda f: f)


def test_checked_ignores_padding_and_masked_sequences():
  # Labels past label_lengths and masked sequences may hold anything.
  labels = jnp.array([[1, 0], [0, 9]])
  value = jl.checked(jl.ctc)(
    LOGITS, labels, logit_lengths=jnp.array([4, 4]), label_lengths=jnp.array([1, 2]), where=jnp.array([True, False])
  )
  assert np.isfinite(float(value))
