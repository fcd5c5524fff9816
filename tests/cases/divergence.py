"""Registry cases for the divergences: distributions over a trailing axis of 4 classes."""

import numpy as np

import jaxloss as jl
from registry import Case

C = 4


def _log_softmax(x):
  m = np.max(x, axis=-1, keepdims=True)
  return x - m - np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True))


def _log_dist(rng, batch):
  return _log_softmax(rng.normal(size=(*batch, C)) * 2)


def _kl(rng, batch):
  # Targets of moderate size: the finite differences of p log p lose accuracy as p -> 0.
  return _log_dist(rng, batch), np.exp(_log_softmax(rng.normal(size=(*batch, C))))


def _kl_log(rng, batch):
  return _log_dist(rng, batch), _log_dist(rng, batch)


def _js(rng, batch):
  return _log_dist(rng, batch), _log_dist(rng, batch)


def _sparse(rng, batch):
  """A distribution with exact zeros: one class per example has no mass."""
  p = np.exp(_log_dist(rng, batch))
  zero = rng.integers(0, C, size=batch)
  np.put_along_axis(p, zero[..., None], 0.0, axis=-1)
  return p / p.sum(-1, keepdims=True), zero


def _kl_extremes(rng, batch):
  p, zero = _sparse(rng, batch)
  log_q = _log_dist(rng, batch)
  masked_q = log_q.copy()
  np.put_along_axis(masked_q, zero[..., None], -np.inf, axis=-1)  # log q = -inf exactly where p = 0
  one_hot = np.eye(C)[rng.integers(0, C, size=batch)]
  return [(log_q, p), (masked_q, p), (log_q, one_hot), (np.full((*batch, C), -1e4), p)]


def _log(p):
  return np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), -np.inf)


def _kl_log_extremes(rng, batch):
  return [(log_q, _log(p)) for log_q, p in _kl_extremes(rng, batch)]


def _js_extremes(rng, batch):
  p, zero = _sparse(rng, batch)
  log_p = _log(p)
  log_q = _log_dist(rng, batch)
  both = log_q.copy()
  np.put_along_axis(both, zero[..., None], -np.inf, axis=-1)  # a class absent from both
  disjoint_p = _log(np.eye(C)[np.zeros(batch, int)])
  disjoint_q = _log(np.eye(C)[np.ones(batch, int)])
  return [(log_p, log_q), (log_q, log_p), (log_p, both), (disjoint_p, disjoint_q), (np.full((*batch, C), -1e4), log_q)]


CASES = [
  Case("kl_divergence", jl.kl_divergence, _kl, _kl_extremes, diff=(0, 1)),
  Case(
    "kl_divergence-log_targets", jl.kl_divergence, _kl_log, _kl_log_extremes, kwargs={"log_targets": True}, diff=(0, 1)
  ),
  Case("js_divergence", jl.js_divergence, _js, _js_extremes, diff=(0, 1)),
]
