"""Registry cases for the regression losses."""

import numpy as np

import jaxloss as jl
from registry import Case, Option


def _pair(rng, batch):
  return rng.normal(size=batch), rng.normal(size=batch)


def _rows(rng, batch):
  """One row of 4 errors per example, for ``rmse(axis=-1)``."""
  return _pair(rng, (*batch, 4))


def _rows_extremes(rng, batch):
  return _pair_extremes(rng, (*batch, 4))


def _positive_pair(rng, batch):
  return rng.uniform(0.1, 3.0, size=batch), rng.uniform(0.1, 3.0, size=batch)


def _counts(rng, batch):
  return rng.normal(size=batch), rng.poisson(2.0, size=batch).astype(np.float64)


def _rates(rng, batch):
  # Real-valued targets away from 1, where the Stirling term switches on (a jump, as in torch).
  u = rng.uniform(0.0, 3.0, size=batch)
  return rng.uniform(0.1, 3.0, size=batch), np.where(u < 0.5, u, u + 1.0)


def _gaussian(rng, batch):
  return rng.normal(size=batch), rng.normal(size=batch), rng.uniform(0.5, 2.0, size=batch)


def _pair_extremes(rng, batch):
  """Huge and tiny errors, and the exact kink p == t."""
  t = rng.normal(size=batch)
  return [
    (np.full(batch, 1e4), np.zeros(batch)),
    (np.full(batch, -1e4), np.zeros(batch)),
    (np.full(batch, 1e-30), np.zeros(batch)),
    (t, t.copy()),
    (np.zeros(batch), np.zeros(batch)),
  ]


def _positive_extremes(rng, batch):
  t = rng.uniform(0.1, 3.0, size=batch)
  return [
    (np.full(batch, 1e4), np.zeros(batch)),
    (np.full(batch, 1e-30), np.full(batch, 1e4)),
    (t, t.copy()),
  ]


def _log_rate_extremes(rng, batch):
  # exp(1e4) overflows: a log-rate beyond ~88 is +inf in float32 for any implementation.
  return [
    (np.full(batch, -1e4), np.full(batch, 3.0)),
    (np.full(batch, 80.0), np.zeros(batch)),
    (np.full(batch, 1e-30), np.full(batch, 1e4)),
    (np.zeros(batch), np.zeros(batch)),
  ]


def _rate_extremes(rng, batch):
  return [
    (np.full(batch, 1e4), np.full(batch, 1e4)),
    (np.zeros(batch), np.full(batch, 3.0)),
    (np.full(batch, 1e-30), np.ones(batch)),
  ]


def _gaussian_extremes(rng, batch):
  t = rng.normal(size=batch)
  return [
    (np.full(batch, 1e4), np.zeros(batch), np.full(batch, 1e-30)),
    (t, t.copy(), np.zeros(batch)),
    (np.full(batch, 1e-30), np.zeros(batch), np.full(batch, 1e4)),
  ]


CASES = [
  Case("mse", jl.mse, _pair, _pair_extremes),
  Case("mae", jl.mae, _pair, _pair_extremes),
  Case("rmse", jl.rmse, _pair, _pair_extremes, where_on_inputs=True),
  Case("rmse-axis", jl.rmse, _rows, _rows_extremes, kwargs={"axis": -1}, where_on_inputs=True),
  Case("huber", jl.huber, _pair, _pair_extremes, options={"delta": Option(0.7, invalid=-1.0)}),
  Case("huber-delta0.3", jl.huber, _pair, _pair_extremes, kwargs={"delta": 0.3}),
  Case("smooth_l1", jl.smooth_l1, _pair, _pair_extremes, options={"beta": Option(0.6, invalid=-1.0)}),
  Case("smooth_l1-beta0", jl.smooth_l1, _pair, _pair_extremes, kwargs={"beta": 0.0}),
  Case("log_cosh", jl.log_cosh, _pair, _pair_extremes),
  Case("quantile", jl.quantile, _pair, _pair_extremes, options={"q": Option(0.3, invalid=1.5)}),
  Case("quantile-q0.9", jl.quantile, _pair, _pair_extremes, kwargs={"q": 0.9}),
  Case("msle", jl.msle, _positive_pair, _positive_extremes),
  Case("mape", jl.mape, _pair, _pair_extremes, options={"eps": Option(0.5, invalid=0.0)}),
  Case("poisson_nll", jl.poisson_nll, _counts, _log_rate_extremes),
  Case(
    "poisson_nll-rate-full",
    jl.poisson_nll,
    _rates,
    kwargs={"log_input": False, "full": True},
    extremes=_rate_extremes,
    diff=(0, 1),
    options={"eps": Option(0.1, invalid=-1.0)},
  ),
  Case(
    "gaussian_nll",
    jl.gaussian_nll,
    _gaussian,
    _gaussian_extremes,
    diff=(0, 2),
    options={"eps": Option(0.6, invalid=0.0)},
  ),
  Case("gaussian_nll-full", jl.gaussian_nll, _gaussian, _gaussian_extremes, kwargs={"full": True}, diff=(0, 1, 2)),
]
