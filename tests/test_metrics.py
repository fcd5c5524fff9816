"""jaxloss.metrics against scikit-learn (or an exhaustive NumPy reference) in float64, ties and masks included."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sklearn.calibration
import sklearn.metrics
from jax.experimental import checkify

import jaxloss as jl
from jaxloss import metrics

RNG = np.random.default_rng(0)
N, C = 60, 4
# Scores on a coarse grid: many ties, between classes and between examples.
SCORES = RNG.integers(0, 4, (N, C)) / 4
LABELS = RNG.integers(0, C, N)
MASK = RNG.random(N) < 0.8
WEIGHTS = RNG.integers(1, 4, N).astype(np.float64)


def close(actual, expected):
  assert actual.dtype == jnp.float64, actual.dtype
  np.testing.assert_allclose(np.asarray(actual), expected, rtol=1e-6, atol=1e-12)


@pytest.fixture(autouse=True)
def x64():
  with jax.enable_x64(True):
    yield


def test_accuracy_top_k_matches_sklearn():
  m = MASK
  close(metrics.accuracy(SCORES, LABELS), sklearn.metrics.accuracy_score(LABELS, SCORES.argmax(-1)))
  for k in (1, 2, 3):
    # jaxloss ranks the lower class first on a tie, scikit-learn the higher: reverse the class order for it
    expected = sklearn.metrics.top_k_accuracy_score(
      C - 1 - LABELS[m], SCORES[m][:, ::-1], k=k, labels=range(C), sample_weight=WEIGHTS[m]
    )
    close(metrics.accuracy(SCORES, LABELS, k=k, weights=WEIGHTS, where=m), expected)


# Labels 0..4 but class 2 appears in neither labels nor predictions: the macro mean leaves it out.
PRED = RNG.choice([0, 1, 3, 4], N)
TRUE = np.where(RNG.random(N) < 0.5, PRED, RNG.choice([0, 1, 3, 4], N))


@pytest.mark.parametrize("average", ["binary", "micro", "macro"])
def test_precision_recall_fbeta_match_sklearn(average):
  pred, true = (PRED % 2, TRUE % 2) if average == "binary" else (PRED, TRUE)
  options = {} if average == "binary" else {"num_classes": 5}
  m, w = MASK, WEIGHTS
  ref = {"average": average, "sample_weight": w[m], "zero_division": 0}
  got = lambda fn, **kw: fn(pred, true, average=average, **options, weights=w, where=m, **kw)
  close(got(metrics.precision), sklearn.metrics.precision_score(true[m], pred[m], **ref))
  close(got(metrics.recall), sklearn.metrics.recall_score(true[m], pred[m], **ref))
  for beta in (0.5, 2.0):
    close(got(metrics.fbeta, beta=beta), sklearn.metrics.fbeta_score(true[m], pred[m], beta=beta, **ref))
  traced = got(metrics.fbeta, beta=jnp.asarray(1.0))
  close(traced, sklearn.metrics.f1_score(true[m], pred[m], **ref))


def test_binary_precision_takes_bools_and_divides_zero_by_zero_as_zero():
  pred = jnp.zeros(4, bool)
  assert float(metrics.precision(pred, jnp.array([True, False, True, False]))) == 0.0
  close(metrics.recall(PRED % 2 == 1, TRUE % 2 == 1), sklearn.metrics.recall_score(TRUE % 2, PRED % 2))


# Scores with ties, labels 0/1, shape [6, 10] (flattened by the binary-score metrics).
BIN_SCORES = RNG.integers(0, 6, (6, 10)) / 5
BIN_LABELS = (RNG.random((6, 10)) < 0.4).astype(np.int32)
BIN_MASK = RNG.random((6, 10)) < 0.8
BIN_WEIGHTS = RNG.random((6, 10)) + 0.5


@pytest.mark.parametrize(
  "ours, theirs",
  [
    (metrics.roc_auc, sklearn.metrics.roc_auc_score),
    (metrics.average_precision, sklearn.metrics.average_precision_score),
  ],
  ids=["roc_auc", "average_precision"],
)
def test_roc_auc_and_average_precision_match_sklearn(ours, theirs):
  s, y, m, w = BIN_SCORES, BIN_LABELS, BIN_MASK, BIN_WEIGHTS
  close(ours(s, y), theirs(y.ravel(), s.ravel()))
  close(ours(s, 2 * y - 1, weights=w, where=m), theirs(y[m], s[m], sample_weight=w[m]))  # -1/+1 labels


def test_roc_auc_edges():
  s = jnp.array([0.3, jnp.nan, 0.1, jnp.inf])
  y = jnp.array([1, 0, 0, 1])
  close(metrics.roc_auc(s, y, where=jnp.array([True, False, True, True])), 1.0)  # masked NaN: no effect
  assert np.isnan(metrics.roc_auc(s, y))  # unmasked NaN
  assert np.isnan(metrics.roc_auc(s, jnp.ones(4)))  # one class only (scikit-learn raises)
  assert float(metrics.average_precision(jnp.array([0.3, 0.1]), jnp.zeros(2))) == 0.0  # no positive, as sklearn
  # vmap over tasks equals one call per task
  per_task = jax.vmap(metrics.roc_auc)(BIN_SCORES, BIN_LABELS)
  close(per_task, [sklearn.metrics.roc_auc_score(y, s) for s, y in zip(BIN_SCORES, BIN_LABELS, strict=True)])


# Lists [8, 6] with ties; item masks keep at least 2 items per list but the first, which is masked whole (it
# leaves the mean); the last list has no relevant item (it scores 0 and counts).
L = 6
LIST_SCORES = RNG.integers(0, 4, (8, L)) / 3
LIST_LABELS = RNG.integers(0, 3, (8, L)) * (RNG.random((8, L)) < 0.6)
LIST_LABELS[-1] = 0
LIST_MASK = RNG.random((8, L)) < 0.8
LIST_MASK[:, :2] = True
LIST_MASK[0] = False
LIST_WEIGHTS = RNG.random(8) + 0.5
KEPT = slice(1, None)  # the lists the references see


@pytest.mark.parametrize("k", [None, 3])
def test_ndcg_matches_sklearn_with_tie_averaging(k):
  s, y, m, w = LIST_SCORES, LIST_LABELS.astype(np.float64), LIST_MASK, LIST_WEIGHTS
  per_list = [sklearn.metrics.ndcg_score(y[i, m[i]][None], s[i, m[i]][None], k=k) for i in range(len(s))[KEPT]]
  close(metrics.ndcg(s, y, k=k, weights=w, where=m), np.average(per_list, weights=w[KEPT]))


def _over_tie_breaks(s, y, metric):
  """The mean of ``metric(labels in ranked order)`` over every order that breaks the ties of ``s``."""
  values = [metric(y[np.lexsort((np.argsort(p), -s))]) for p in itertools.permutations(range(len(s)))]
  return np.mean(values)


def _reciprocal_rank(ranked):
  hits = np.flatnonzero(ranked > 0)
  return 1 / (hits[0] + 1) if hits.size else 0.0


@pytest.mark.parametrize("k", [2, 4, 8])
def test_mrr_and_precision_at_k_are_means_over_tie_breaking_orders(k):
  s, y, m, w = LIST_SCORES, LIST_LABELS, LIST_MASK, LIST_WEIGHTS
  lists = range(len(s))[KEPT]
  precision = [_over_tie_breaks(s[i, m[i]], y[i, m[i]], lambda r: np.sum(r[:k] > 0) / k) for i in lists]
  close(metrics.precision_at_k(s, y, k=k, weights=w, where=m), np.average(precision, weights=w[KEPT]))
  if k == 2:
    reciprocal = [_over_tie_breaks(s[i, m[i]], y[i, m[i]], _reciprocal_rank) for i in lists]
    close(metrics.mrr(s, y, weights=w, where=m), np.average(reciprocal, weights=w[KEPT]))


# Probabilities on a grid (0.25 steps): confidences tie and fall on bin edges.
PROBS = RNG.dirichlet(np.ones(C), 200)
PROBS[:80] = np.array([[0.5, 0.25, 0.25, 0.0], [0.75, 0.25, 0.0, 0.0]])[RNG.integers(0, 2, 80)][:, RNG.permutation(C)]
CAL_LABELS = RNG.integers(0, C, 200)
CAL_MASK = RNG.random(200) < 0.9
CAL_WEIGHTS = RNG.integers(1, 4, 200)


@pytest.mark.parametrize("binning, strategy, bins", [("equal_width", "uniform", 10), ("equal_mass", "quantile", 7)])
def test_calibration_matches_sklearn_calibration_curve(binning, strategy, bins):
  m, w = CAL_MASK, CAL_WEIGHTS
  # integer weights = repeated examples (calibration_curve has no sample_weight)
  conf = np.repeat(PROBS[m].max(-1), w[m])
  correct = np.repeat(PROBS[m].argmax(-1) == CAL_LABELS[m], w[m])
  prob_true, prob_pred = sklearn.calibration.calibration_curve(correct, conf, n_bins=bins, strategy=strategy)
  # only the equal-width edges: equal-mass quantiles are of the unweighted examples
  options = {"bins": bins, "binning": binning, "where": m}
  if binning == "equal_width":
    options["weights"] = w.astype(np.float64)
  else:
    conf, correct = PROBS[m].max(-1), PROBS[m].argmax(-1) == CAL_LABELS[m]
    prob_true, prob_pred = sklearn.calibration.calibration_curve(correct, conf, n_bins=bins, strategy=strategy)
  # the edges and counts as calibration_curve computes them (its quantiles are linspace(0, 1) * 100, exactly)
  quantiles = np.linspace(0, 1, bins + 1)
  edges = quantiles if binning == "equal_width" else np.percentile(conf, quantiles * 100)
  counts = np.bincount(np.searchsorted(edges[1:-1], conf), minlength=bins)
  curve = metrics.reliability_curve(PROBS, CAL_LABELS, **options)
  occupied = np.asarray(curve.count) > 0
  np.testing.assert_array_equal(np.asarray(curve.count), counts)
  close(curve.confidence[occupied], prob_pred)
  close(curve.accuracy[occupied], prob_true)
  assert np.all(np.isnan(np.asarray(curve.confidence)[~occupied]))
  close(curve.edges, edges)
  gaps = np.abs(prob_true - prob_pred)
  close(metrics.expected_calibration_error(PROBS, CAL_LABELS, **options), np.sum(counts[occupied] * gaps) / len(conf))
  close(metrics.max_calibration_error(PROBS, CAL_LABELS, **options), gaps.max())
  options["where"] = np.zeros(len(PROBS), bool)  # nothing left: 0 (the same compiled programs)
  assert float(metrics.expected_calibration_error(PROBS, CAL_LABELS, **options)) == 0.0
  assert float(metrics.max_calibration_error(PROBS, CAL_LABELS, **options)) == 0.0


@pytest.mark.parametrize(
  "call, error, pattern",
  [
    (
      lambda: metrics.accuracy(jnp.ones((3, 4), jnp.int32), jnp.zeros(3, jnp.int32)),
      TypeError,
      r"jaxloss\.metrics\.accuracy: `scores` must be a floating-point array, got dtype int32",
    ),
    (
      lambda: metrics.accuracy(jnp.ones((3, 4)), jnp.zeros(3, jnp.int32), k=0),
      ValueError,
      r"`k` must be a positive int",
    ),
    (
      lambda: metrics.accuracy(jnp.ones((3, 4)), jnp.zeros(3, jnp.int32), k=jnp.array(2)),
      TypeError,
      r"`k` must be a Python int",
    ),
    (
      lambda: metrics.fbeta(jnp.zeros(3, jnp.int32), jnp.zeros(3, jnp.int32), average="weighted"),
      ValueError,
      r"jaxloss\.metrics\.fbeta: `average` must be one of 'binary', 'micro', 'macro', got 'weighted'",
    ),
    (
      lambda: metrics.precision(jnp.zeros(3, jnp.int32), jnp.zeros(3, jnp.int32), average="macro"),
      ValueError,
      r"jaxloss\.metrics\.precision: `num_classes` is required for average='macro'",
    ),
    (
      lambda: metrics.recall(jnp.zeros(3), jnp.zeros(3), average="micro", num_classes=2),
      TypeError,
      r"jaxloss\.metrics\.recall: `predictions` must be an integer array, got dtype float",
    ),
    (
      lambda: metrics.fbeta(jnp.zeros(3, jnp.int32), jnp.zeros(4, jnp.int32)),
      ValueError,
      r"`predictions` and `labels` must have the same shape",
    ),
    (lambda: metrics.fbeta(jnp.zeros(3, jnp.int32), jnp.zeros(3, jnp.int32), beta=-1.0), ValueError, r"`beta` must be"),
    (
      lambda: metrics.roc_auc(jnp.zeros(3), jnp.zeros(3), where=jnp.ones(3)),
      TypeError,
      r"jaxloss\.metrics\.roc_auc: `where` must be a boolean mask",
    ),
    (
      lambda: metrics.ndcg(jnp.zeros(()), jnp.zeros(())),
      ValueError,
      r"jaxloss\.metrics\.ndcg: `scores` must have shape \[\.\.\., L\]",
    ),
    (
      lambda: metrics.precision_at_k(jnp.zeros(3), jnp.zeros(3), k=None),
      ValueError,
      r"`k` must be a positive int, got None",
    ),
    (
      lambda: metrics.expected_calibration_error(jnp.ones((3, 2)) / 2, jnp.zeros(3, jnp.int32), binning="uniform"),
      ValueError,
      r"`binning` must be one of 'equal_width', 'equal_mass', got 'uniform'",
    ),
    (
      lambda: metrics.reliability_curve(jnp.ones((3, 2)) / 2, jnp.zeros(3, jnp.int32), bins=0),
      ValueError,
      r"jaxloss\.metrics\.reliability_curve: `bins` must be a positive int, got 0",
    ),
  ],
)
def test_errors_name_the_metric_and_the_argument(call, error, pattern):
  with pytest.raises(error, match=pattern):
    call()


def test_checked_reports_labels_out_of_the_binary_range():
  with pytest.raises(checkify.JaxRuntimeError, match=r"jaxloss\.metrics\.fbeta: `labels` must be 0 or 1"):
    jl.checked(metrics.fbeta)(jnp.array([0, 1]), jnp.array([0, 2]))
