"""Losses over sequences: connectionist temporal classification (CTC).

``logits`` are ``[..., T, K]`` (time steps, then classes: the class axis is
last), ``labels`` are ``[..., N]``; leading dimensions are batch, and the
per-example loss is one value per sequence, of shape ``[...]``, to which
``weights`` and ``where`` broadcast. Inputs are computed in float32 at least
(float16 and bfloat16 are promoted; float64 stays float64 when x64 is enabled).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxloss import _checks, _inputs, _reduce
from jaxloss._api import Static, loss

# The CTC lattice of labels l_0 .. l_{N-1} has N + 1 blank states (blank n comes before label n) and N label
# states, kept as two arrays [B, N + 1] and [B, N] so no step interleaves or gathers. Log-probabilities are
# time-major: lp_blank [T, B], lp_labels [T, B, N]. skip[b, n] says label n may follow label n - 1 directly
# (they differ). A step t >= logit_lengths[b] leaves sequence b's state as it is, so every sequence ends in
# its own final state after the last step.


def _log_sum_exp(*terms: jax.Array) -> jax.Array:
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


def _prepend(x: jax.Array, fill: jax.Array) -> jax.Array:
  """``x`` with ``fill`` prepended along the last axis (entry n + 1 is ``x[..., n]``)."""
  return jnp.concatenate([jnp.broadcast_to(fill, (*x.shape[:-1], 1)), x], axis=-1)


def _append(x: jax.Array, fill: jax.Array) -> jax.Array:
  """``x`` with ``fill`` appended along the last axis."""
  return jnp.concatenate([x, jnp.broadcast_to(fill, (*x.shape[:-1], 1))], axis=-1)


def _alphas(lp_blank, lp_labels, skip, logit_lengths, keep: bool):
  """The forward recursion in log space: the final state and, with ``keep``, the state after every step."""
  no_path = jnp.full((), -jnp.inf, lp_labels.dtype)
  _, batch, n = lp_labels.shape
  start = (jnp.full((batch, n + 1), no_path).at[:, 0].set(0), jnp.full((batch, n), no_path))

  def step(state, inputs):
    blank, label = state
    t, emit_blank, emit_label = inputs
    previous_label = _prepend(label, no_path)  # entry n: label n - 1
    new_blank = emit_blank[:, None] + _log_sum_exp(blank, previous_label)
    skipped = jnp.where(skip, previous_label[:, :-1], no_path)
    new_label = emit_label + _log_sum_exp(label, blank[:, :-1], skipped)
    active = (t < logit_lengths)[:, None]
    state = (jnp.where(active, new_blank, blank), jnp.where(active, new_label, label))
    return state, (state if keep else None)

  steps = jnp.arange(lp_blank.shape[0], dtype=logit_lengths.dtype)
  return jax.lax.scan(step, start, (steps, lp_blank, lp_labels))


def _accepting(label_lengths: jax.Array, n: int, dtype) -> tuple[jax.Array, jax.Array]:
  """Log-indicators (0 or -inf) of the accepting states, blank ``L`` and label ``L - 1``: the backward start."""
  positions = jnp.arange(n + 1, dtype=label_lengths.dtype)
  blank = jnp.where(positions[None, :] == label_lengths[:, None], 0, -jnp.inf).astype(dtype)
  return blank, blank[:, 1:]


def _log_likelihood_of(state, label_lengths):
  """log p from the final state: log(alpha(blank L) + alpha(label L - 1))."""
  blank, label = state
  end = label_lengths[:, None]
  end_blank = jnp.take_along_axis(blank, end, axis=-1, mode="promise_in_bounds")
  end_label = jnp.take_along_axis(_prepend(label, -jnp.inf), end, axis=-1, mode="promise_in_bounds")
  return _log_sum_exp(end_blank, end_label)[:, 0]


def _occupancy(alphas, lp_blank, lp_labels, skip, logit_lengths, label_lengths, log_likelihood):
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
  accept = _accepting(label_lengths, lp_labels.shape[-1], lp_labels.dtype)
  feasible = (log_likelihood > -jnp.inf)[:, None]
  log_p = jnp.where(feasible, log_likelihood[:, None], 0)
  n = skip.shape[-1]
  skip_next = _append(skip[:, 1:], False)[:, :n]  # entry n: label n + 1 may follow label n directly

  def step(carry, inputs):
    # carry: log(emission at t + 1) + beta_{t + 1}, per state.
    out_blank, out_label = carry
    t, emit_blank, emit_label, alpha_blank, alpha_label = inputs
    new_blank = _log_sum_exp(out_blank, _append(out_label, no_path))
    skipped = jnp.where(skip_next, _append(out_label[:, 1:], no_path)[:, :n], no_path)
    new_label = _log_sum_exp(out_label, out_blank[:, 1:], skipped)
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
def _log_likelihood(lp_blank, lp_labels, skip, logit_lengths, label_lengths):
  """log p(labels | log-probabilities) by the forward recursion alone (what a plain evaluation runs)."""
  final, _ = _alphas(lp_blank, lp_labels, skip, logit_lengths, keep=False)
  return _log_likelihood_of(final, label_lengths)


@_log_likelihood.defjvp
def _log_likelihood_jvp(primals, tangents):
  # The derivative is the posterior occupancy (Graves et al. 2006), from one forward and one backward
  # recursion on primal values only: reverse mode keeps just the occupancy, never the scans' per-step
  # state, and forward mode (jvp, jacfwd, hessian) works as well.
  lp_blank, lp_labels, skip, logit_lengths, label_lengths = primals
  tangent_blank, tangent_labels = tangents[:2]
  final, alphas = _alphas(lp_blank, lp_labels, skip, logit_lengths, keep=True)
  log_likelihood = _log_likelihood_of(final, label_lengths)
  gamma_blank, gamma_labels = _occupancy(
    alphas, lp_blank, lp_labels, skip, logit_lengths, label_lengths, log_likelihood
  )
  tangent = jnp.sum(gamma_blank * tangent_blank, axis=0) + jnp.sum(gamma_labels * tangent_labels, axis=(0, 2))
  return log_likelihood, tangent


def _lattice(x: jax.Array, y: jax.Array, blank: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The lattice's time-major log-probabilities ``lp_blank`` ``[T, B]``, ``lp_labels`` ``[T, B, N]`` and ``skip``.

  ``x`` is ``[B, T, K]`` logits and ``y`` ``[B, N]`` labels in range. The
  log-probabilities the lattice emits are gathered (no one-hot).
  """
  normaliser = jax.nn.logsumexp(x, axis=-1)
  lp_blank = (x[..., blank] - normaliser).T
  gathered = jnp.take_along_axis(x, y[:, None, :], axis=-1, mode="promise_in_bounds")
  lp_labels = jnp.transpose(gathered - normaliser[..., None], (1, 0, 2))
  skip = _prepend(y[:, 1:] != y[:, :-1], False)[:, : y.shape[-1]]  # [:, :N] keeps N = 0 empty
  return lp_blank, lp_labels, skip


@loss
def ctc(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  logit_lengths: ArrayLike,
  label_lengths: ArrayLike,
  blank: Static[int] = 0,
  zero_infinity: Static[bool] = False,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Connectionist temporal classification loss: the negative log-likelihood of the labels.

  .. math::
    \ell_b = -\log \sum_{\pi \in \mathcal{B}^{-1}(y_b)} \prod_{t < T_b}
      \operatorname{softmax}(z_{b,t})_{\pi_t}

  where :math:`\mathcal{B}` removes repeats, then blanks, from an alignment
  :math:`\pi` of length :math:`T_b` (the sequence's ``logit_lengths``), and
  :math:`y_b` is its first ``label_lengths`` labels.

  Args:
    logits: floating ``[..., T, K]``: unnormalised scores over ``K`` classes
      (blank included) for each of ``T`` time steps; a log-softmax is applied.
    labels: integer ``[..., N]``, right-padded label sequences; entries past
      ``label_lengths`` are ignored.
    logit_lengths: integer ``[...]``, the number of valid time steps of each
      sequence (``0 <= T_b <= T``).
    label_lengths: integer ``[...]``, the number of labels of each sequence
      (``0 <= L_b <= N``).
    blank: the blank class, in ``[0, K)``; labels must not use it.
    zero_infinity: give sequences with no alignment (too few time steps for
      their labels) a loss of 0 and a zero gradient instead of ``+inf``.
    reduction: ``"mean"`` (default, over sequences), ``"sum"`` or ``"none"``.
    weights: optional weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``; masked sequences
      are ignored entirely (their inputs may hold anything, even NaN).

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``; float32 for half inputs.

  Per sequence, equal to ``torch.nn.functional.ctc_loss(log_softmax(logits),
  ..., reduction="none")`` with time-major inputs. ``reduction="mean"`` is the
  mean over sequences; torch's default ``"mean"`` divides each loss by its label
  length first: ``jnp.mean(ctc(..., reduction="none") /
  jnp.maximum(label_lengths, 1))``. A sequence with no alignment has loss
  ``+inf`` and gradient 0 (the loss is constant in the logits there; torch's
  gradient is the softmax), or 0 with ``zero_infinity``. The gradient is the
  exact posterior occupancy from the forward-backward recursions (a
  ``custom_jvp``), so reverse mode stores no per-step state, and forward mode
  (``jax.jvp``, ``jax.jacfwd``, ``jax.hessian``) works. Unlike
  ``optax.losses.ctc_loss``, unreachable states are exactly -inf, not
  ``log_epsilon``. Reference: Graves et al., "Connectionist Temporal
  Classification", ICML 2006.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> logits = jnp.zeros((1, 3, 2))  # 3 steps, classes {blank, a}, uniform
    >>> labels = jnp.array([[1]])
    >>> # 6 of the 8 alignments of length 3 read "a": -log(6/8)
    >>> print(jl.ctc(logits, labels, logit_lengths=jnp.array([3]), label_lengths=jnp.array([1])))
    0.28768206
  """
  x = _checks.floating("logits", logits)
  y = _checks.integer("labels", labels)
  logit_lengths = _checks.integer("logit_lengths", logit_lengths)
  label_lengths = _checks.integer("label_lengths", label_lengths)
  if x.ndim < 2:
    raise ValueError(f"{_checks.name()}: `logits` must have shape [..., T, K] (rank >= 2), got logits.shape={x.shape}.")
  batch, (steps, classes) = x.shape[:-2], x.shape[-2:]
  if y.shape[:-1] != batch or y.ndim != x.ndim - 1:
    raise ValueError(
      f"{_checks.name()}: `labels` must have shape [..., N] with the batch dimensions of `logits` {batch}, got"
      f" labels.shape={y.shape} and logits.shape={x.shape}."
    )
  for name, lengths in (("logit_lengths", logit_lengths), ("label_lengths", label_lengths)):
    if lengths.shape != batch:
      raise ValueError(
        f"{_checks.name()}: `{name}` must have the batch shape of `logits` {batch}, got {name}.shape={lengths.shape}."
      )
  blank_ok = isinstance(blank, (int, np.integer)) and not isinstance(blank, bool) and 0 <= blank < classes
  _checks.option("blank", blank, blank_ok, f"an int in [0, {classes}) (the number of classes)")
  _checks.option("zero_infinity", zero_infinity, isinstance(zero_infinity, bool), "a bool")
  _reduce.check_reduction(reduction)

  dtype = _checks.compute_dtype(x)
  mask = _inputs.mask(where, batch, of="the per-sequence loss")
  n = y.shape[-1]
  size = math.prod(batch)
  # Flatten the batch; masked sequences become empty ones (no steps, no labels): loss 0, gradient 0.
  x = _inputs.zero_masked(mask, x.astype(dtype), axis=(-2, -1)).reshape(size, steps, classes)
  y = y.astype(jnp.int32).reshape(size, n)
  logit_lengths = logit_lengths.astype(jnp.int32).reshape(size)
  label_lengths = label_lengths.astype(jnp.int32).reshape(size)
  if mask is not None:
    flat_mask = mask.reshape(size)
    logit_lengths = jnp.where(flat_mask, logit_lengths, 0)
    label_lengths = jnp.where(flat_mask, label_lengths, 0)
  _checks.debug_no_nan(logits=x)
  for name, lengths, most in (("logit_lengths", logit_lengths, steps), ("label_lengths", label_lengths, n)):
    inside = (lengths >= 0) & (lengths <= most)
    message = f"{_checks.name()}: `{name}` must be in [0, {most}], found {{}}."
    _checks.debug_all(inside, message, lengths)
  used = jnp.arange(n, dtype=jnp.int32)[None, :] < label_lengths[:, None]
  valid_label = (y >= 0) & (y < classes) & (y != blank)
  message = (
    f"{_checks.name()}: `labels` must be class indices in [0, {classes}) other than the blank {blank}, found {{}}."
  )
  _checks.debug_all(valid_label | ~used, message, y)
  logit_lengths = jnp.clip(logit_lengths, 0, steps)
  label_lengths = jnp.clip(label_lengths, 0, n)
  y = jnp.clip(y, 0, classes - 1)

  nll = -_log_likelihood(*_lattice(x, y, blank), logit_lengths, label_lengths)
  if zero_infinity:
    nll = jnp.where(nll < jnp.inf, nll, 0)
  return _reduce.reduce(nll.reshape(batch), reduction=reduction, weights=weights, where=mask)
