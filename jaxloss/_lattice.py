"""The CTC lattice and its forward-backward recursions, shared by :func:`jaxloss.ctc` and the optax mirror.

Private: :mod:`jaxloss.sequence` builds the public loss on :func:`log_likelihood`,
and :mod:`jaxloss.compat.optax` reads the forward variables from :func:`alphas`
(``optax.losses.ctc_loss_with_forward_probs`` returns them).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

# The CTC lattice of labels l_0 .. l_{N-1} has N + 1 blank states (blank n comes before label n) and N label
# states, kept as two arrays [B, N + 1] and [B, N] so no step interleaves or gathers. Log-probabilities are
# time-major: lp_blank [T, B], lp_labels [T, B, N]. skip[b, n] says label n may follow label n - 1 directly
# (they differ). A step t >= logit_lengths[b] leaves sequence b's state as it is, so every sequence ends in
# its own final state after the last step.


def log_sum_exp(*terms: jax.Array) -> jax.Array:
  """Elementwise ``log(sum(exp(terms)))`` of a few arrays: -inf, never NaN, when every term is -inf.

  The guards keep the derivatives finite as well, so second-order
  differentiation through the recursions (``jax.hessian`` of :func:`ctc`) is
  NaN-free.
  """
  top = terms[0]
  for term in terms[1:]:
    top = jnp.maximum(top, term)
  reachable = top > -jnp.inf
  shift = jax.lax.stop_gradient(jnp.where(reachable, top, 0))
  total = jnp.exp(terms[0] - shift)
  for term in terms[1:]:
    total = total + jnp.exp(term - shift)
  return jnp.where(reachable, jnp.log(jnp.where(reachable, total, 1)) + shift, -jnp.inf)


def prepend(x: jax.Array, fill: ArrayLike) -> jax.Array:
  """``x`` with ``fill`` prepended along the last axis (entry n + 1 is ``x[..., n]``)."""
  return _pad_last(x, fill, (1, 0))


def append(x: jax.Array, fill: ArrayLike) -> jax.Array:
  """``x`` with ``fill`` appended along the last axis."""
  return _pad_last(x, fill, (0, 1))


def _pad_last(x: jax.Array, fill: ArrayLike, where: tuple[int, int]) -> jax.Array:
  """``x`` padded with ``fill`` along the last axis (also an empty one), sharded as ``x`` (not a constant's
  replicated type under ``jax.set_mesh``)."""
  padding = [(0, 0, 0)] * (x.ndim - 1) + [(*where, 0)]
  return jax.lax.pad(x, jnp.asarray(fill, x.dtype), padding)


def alphas(lp_blank, lp_labels, skip, logit_lengths, keep: bool):
  """The forward recursion in log space: the final state and, with ``keep``, the state after every step."""
  no_path = jnp.full((), -jnp.inf, lp_labels.dtype)
  _, batch, n = lp_labels.shape
  # From logit_lengths: under explicit sharding the start is typed sharded over the batch as the scan's state.
  nothing = jnp.broadcast_to(jnp.full_like(logit_lengths, -jnp.inf, lp_labels.dtype)[:, None], (batch, n))
  start = (prepend(nothing, 0), nothing)

  def step(state, inputs):
    blank, label = state
    t, emit_blank, emit_label = inputs
    previous_label = prepend(label, no_path)  # entry n: label n - 1
    new_blank = emit_blank[:, None] + log_sum_exp(blank, previous_label)
    skipped = jnp.where(skip, previous_label[:, :-1], no_path)
    new_label = emit_label + log_sum_exp(label, blank[:, :-1], skipped)
    active = (t < logit_lengths)[:, None]
    state = (jnp.where(active, new_blank, blank), jnp.where(active, new_label, label))
    return state, (state if keep else None)

  steps = jnp.arange(lp_blank.shape[0], dtype=logit_lengths.dtype)
  return jax.lax.scan(step, start, (steps, lp_blank, lp_labels))


def accepting(label_lengths: jax.Array, n: int, dtype) -> tuple[jax.Array, jax.Array]:
  """Log-indicators (0 or -inf) of the accepting states, blank ``L`` and label ``L - 1``: the backward start."""
  positions = jnp.arange(n + 1, dtype=label_lengths.dtype)
  blank = jnp.where(positions[None, :] == label_lengths[:, None], 0, -jnp.inf).astype(dtype)
  return blank, blank[:, 1:]


def log_likelihood_of(state, label_lengths):
  """log p from the final state: log(alpha(blank L) + alpha(label L - 1))."""
  blank, label = state
  end = label_lengths[:, None]
  end_blank = jnp.take_along_axis(blank, end, axis=-1, mode="promise_in_bounds")
  end_label = jnp.take_along_axis(prepend(label, -jnp.inf), end, axis=-1, mode="promise_in_bounds")
  return log_sum_exp(end_blank, end_label)[:, 0]


def occupancy(alphas, lp_blank, lp_labels, skip, logit_lengths, label_lengths, log_likelihood):
  """Posterior state occupancy per step from the backward (beta) recursion: ``[T, B]`` (blanks), ``[T, B, N]``.

  ``gamma_t(s) = exp(alpha_t(s) + beta_t(s) - log p)``, the derivative of the
  log-likelihood with respect to the log-probability emitted in state ``s`` at
  step ``t``; 0 after a sequence ends and for sequences with no alignment.
  ``sum_s gamma_t(s) = 1`` at every step; renormalising to it step by step
  keeps float32 accurate: alpha and beta grow to thousands over long sequences,
  and their rounding, common to all states of a step, would otherwise go
  straight into gamma.
  """
  no_path = jnp.full((), -jnp.inf, lp_labels.dtype)
  accept = accepting(label_lengths, lp_labels.shape[-1], lp_labels.dtype)
  feasible = (log_likelihood > -jnp.inf)[:, None]
  log_p = jnp.where(feasible, log_likelihood[:, None], 0)
  n = skip.shape[-1]
  skip_next = append(skip[:, 1:], False)[:, :n]  # entry n: label n + 1 may follow label n directly

  def step(carry, inputs):
    # carry: log(emission at t + 1) + beta_{t + 1}, per state.
    out_blank, out_label = carry
    t, emit_blank, emit_label, alpha_blank, alpha_label = inputs
    new_blank = log_sum_exp(out_blank, append(out_label, no_path))
    skipped = jnp.where(skip_next, append(out_label[:, 1:], no_path)[:, :n], no_path)
    new_label = log_sum_exp(out_label, out_blank[:, 1:], skipped)
    last = (t >= logit_lengths - 1)[:, None]
    beta_blank, beta_label = jnp.where(last, accept[0], new_blank), jnp.where(last, accept[1], new_label)
    counts = (t < logit_lengths)[:, None] & feasible
    gamma_blank = jnp.where(counts, jnp.exp(alpha_blank + beta_blank - log_p), 0)
    gamma_label = jnp.where(counts, jnp.exp(alpha_label + beta_label - log_p), 0)
    total = jnp.sum(gamma_blank, axis=-1, keepdims=True) + jnp.sum(gamma_label, axis=-1, keepdims=True)
    scale = 1 / jnp.where(counts, total, 1)
    carry = (emit_blank[:, None] + beta_blank, emit_label + beta_label)
    return carry, (jnp.sum(gamma_blank, axis=-1) * scale[:, 0], gamma_label * scale)

  steps = jnp.arange(lp_blank.shape[0], dtype=logit_lengths.dtype)
  # The last step is every sequence's last (t >= T_b - 1), so the initial carry is never read.
  _, gammas = jax.lax.scan(step, accept, (steps, lp_blank, lp_labels, *alphas), reverse=True)
  return gammas


@jax.custom_jvp
def log_likelihood(lp_blank, lp_labels, skip, logit_lengths, label_lengths):
  """log p(labels | log-probabilities) by the forward recursion alone (what a plain evaluation runs)."""
  final, _ = alphas(lp_blank, lp_labels, skip, logit_lengths, keep=False)
  return log_likelihood_of(final, label_lengths)


@log_likelihood.defjvp
def _log_likelihood_jvp(primals, tangents):
  # The derivative is the posterior occupancy (Graves et al. 2006), from one forward and one backward
  # recursion on primal values only: reverse mode keeps just the occupancy, never the scans' per-step
  # state, and forward mode (jvp, jacfwd, hessian) works as well.
  lp_blank, lp_labels, skip, logit_lengths, label_lengths = primals
  tangent_blank, tangent_labels = tangents[:2]
  final, states = alphas(lp_blank, lp_labels, skip, logit_lengths, keep=True)
  value = log_likelihood_of(final, label_lengths)
  gamma_blank, gamma_labels = occupancy(states, lp_blank, lp_labels, skip, logit_lengths, label_lengths, value)
  tangent = jnp.sum(gamma_blank * tangent_blank, axis=0) + jnp.sum(gamma_labels * tangent_labels, axis=(0, 2))
  return value, tangent


def emissions(x: jax.Array, y: jax.Array, blank: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The lattice's time-major log-probabilities ``lp_blank`` ``[T, B]``, ``lp_labels`` ``[T, B, N]`` and ``skip``.

  ``x`` is ``[B, T, K]`` logits and ``y`` ``[B, N]`` labels in range. The
  log-probabilities the lattice emits are gathered (no one-hot).
  """
  normaliser = jax.nn.logsumexp(x, axis=-1)
  lp_blank = (x[..., blank] - normaliser).T
  gathered = jnp.take_along_axis(x, y[:, None, :], axis=-1, mode="promise_in_bounds")
  lp_labels = jnp.transpose(gathered - normaliser[..., None], (1, 0, 2))
  skip = prepend(y[:, 1:] != y[:, :-1], False)[:, : y.shape[-1]]  # [:, :N] keeps N = 0 empty
  return lp_blank, lp_labels, skip
