"""The benchmark harness runs end to end on tiny sizes, and its arithmetic is right.

Benchmarks are not tests: nothing here measures speed. It checks that cases are
discovered and compute the same loss as their peers, that a tiny run writes a
file valid against ``benchmarks/schema.json``, that the report renders a table
and PNGs, and the ratio / bandwidth / statistics arithmetic.
"""

import collections
import copy
import dataclasses
import functools
import inspect
import itertools
import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxloss as jl
from benchmarks import __main__ as cli
from benchmarks import case as case_api
from benchmarks import report, run, schema, timing

CASES = case_api.all_cases()


def _case(name):
  return next(c for c in CASES if c.name == name)


# Public names that are not losses: the training helpers, the runtime-check context, the metrics module.
NOT_LOSSES = frozenset({"checked", "metrics", "train"})


def public_losses() -> set[str]:
  """Every loss ``jaxloss`` exports: ``jl.__all__`` minus modules and the non-loss helpers."""
  return {name for name in jl.__all__ if name not in NOT_LOSSES and not inspect.ismodule(getattr(jl, name))}


def test_every_public_loss_has_a_benchmark_case():
  # A case is named "<loss>" or "<loss>-<options>" (benchmarks/case.py); its jaxloss callable may wrap the loss.
  covered = {c.name.split("-")[0] for c in CASES}
  assert covered <= public_losses(), f"case names that are no public loss: {sorted(covered - public_losses())}"
  missing = sorted(public_losses() - covered)
  assert not missing, f"losses without a benchmark case in benchmarks/cases/: {missing}"
  assert {"mse", "cross_entropy", "ctc"} <= public_losses()  # the derivation itself finds losses


def test_quick_represents_every_family():
  # `python -m benchmarks --quick` is the main job: each family's module must put at least one case in it.
  families = {c.family for c in CASES}
  assert {v.case.family for v in run.select(CASES, mode="quick", pattern=None)} == families


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_peers_compute_the_same_loss(case):
  inputs = case.make(case_api.seed_for(0, case, case.smoke_size), case.smoke_size)
  args = [jnp.asarray(x) for x in inputs]
  jax_peers = [name for name in ("jnp", "optax") if case.peer(name) is not None]

  def values_and_grads(*a):
    values = {name: case.peer(name)(*a) for name in ("jaxloss", *jax_peers)}
    if case.jnp is None:
      return values, None
    return values, (jax.grad(case.loss, argnums=case.diff)(*a), jax.grad(case.jnp, argnums=case.diff)(*a))

  # One compilation per case, as the harness runs them (op-by-op eager peers compiled every primitive).
  values, grads = jax.jit(values_and_grads)(*args)
  expected = float(values["jaxloss"])
  assert np.isfinite(expected)
  for name in jax_peers:
    np.testing.assert_allclose(float(values[name]), expected, rtol=2e-5, err_msg=f"{case.name} vs {name}")
  if case.torch is not None:
    value = float(case.torch(*(torch.from_numpy(x) for x in inputs)))
    np.testing.assert_allclose(value, expected, rtol=2e-5, err_msg=f"{case.name} vs torch")
  if grads is not None:  # and the same gradient, so value_and_grad compares like with like
    for ours, theirs in zip(*grads, strict=True):
      # atol scales with the gradient: a matrix product's entries can cancel to far below their terms.
      np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-9 + 1e-6 * float(np.max(np.abs(theirs))))


def test_inputs_depend_on_seed_case_and_size_only():
  mse, mae = _case("mse"), _case("mae")
  first = mse.make(case_api.seed_for(0, mse, 100), 100)
  mae.make(case_api.seed_for(0, mae, 100), 100)  # another case drawn in between changes nothing
  again = mse.make(case_api.seed_for(0, mse, 100), 100)
  other_seed = mse.make(case_api.seed_for(1, mse, 100), 100)
  np.testing.assert_array_equal(first[0], again[0])
  assert not np.array_equal(first[0], other_seed[0])


def test_variant_ids_and_filter():
  chosen = run.select(CASES, mode="quick", pattern=r"^regression/mse/float32/value_and_grad/")
  assert [v.id for v in chosen] == ["regression/mse/float32/value_and_grad/1e7"]
  full = run.select(CASES, mode="full", pattern=None)
  assert len({v.id for v in full}) == len(full)
  assert max(v.size for v in full if isinstance(v.size, int)) == 10**8  # a tuple size is a case's shape
  assert {v.dtype for v in full} == {"float32", "bfloat16"} and {v.mode for v in full} == set(case_api.MODES)


@pytest.mark.parametrize(
  ("size", "label"),
  [(10**7, "1e7"), (3 * 10**6, "3e6"), (1000, "1e3"), (1234, "1234"), (100, "100"), ((4096, 32768), "4096x32768")],
)
def test_size_label(size, label):
  assert case_api.size_label(size) == label


def test_bytes_moved_model():
  p, t = np.zeros(10, np.float32), np.zeros(10, jnp.bfloat16)
  assert case_api.default_bytes_moved([p, t], "forward", (0,)) == 40 + 20
  assert case_api.default_bytes_moved([p, t], "value_and_grad", (0,)) == 40 + 20 + 40
  assert case_api.default_bytes_moved([p, t], "value_and_grad", (0, 1)) == 40 + 20 + 40 + 20


def test_ratio_bandwidth_and_summary_arithmetic():
  # Per-round ratios 2, 1, 4: median 2 (a ratio of medians would say 2/1.5 with these).
  assert timing.paired_ratio([2.0, 1.0, 4.0], [1.0, 1.0, 1.0]) == 2.0
  assert timing.paired_ratio([1.0, 3.0, 2.0], [2.0, 1.0, 1.0]) == 2.0
  with pytest.raises(ValueError, match="equally long"):
    timing.paired_ratio([1.0], [1.0, 2.0])
  assert timing.gbps(3 * 10**9, 2.0) == 1.5
  assert timing.bandwidth_fraction(1.5, 6.0) == 0.25
  assert timing.bandwidth_fraction(1.5, None) is None
  stats = timing.summary([4.0, 1.0, 3.0, 2.0, 5.0])
  assert stats == {"median_s": 3.0, "q1_s": 2.0, "q3_s": 4.0, "min_s": 1.0, "max_s": 5.0, "rounds": 5}


def test_interleaved_balances_the_order_and_settles_before_each_sample():
  calls = []
  timed = [timing.Timed(name, functools.partial(calls.append, name), lambda out: None) for name in "abc"]
  budget = timing.Budget(min_rounds=3, max_rounds=3, round_budget_s=0.0, min_sample_s=0.0)
  samples = timing.interleaved(timed, budget)
  assert {k: len(v) for k, v in samples.items()} == {"a": 3, "b": 3, "c": 3}
  # One calibrating call each, then rounds of (untimed settling call, one-call sample) per implementation.
  assert "".join(calls) == "abc" + "aabbcc" + "bbccaa" + "ccaabb"


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5])
def test_balanced_orders_let_each_implementation_follow_each_other_equally_often(count):
  orders = timing.balanced_orders(count)
  assert all(sorted(order) == list(range(count)) for order in orders)
  follows = collections.Counter(pair for order in orders for pair in itertools.pairwise(order))
  assert len(follows) == count * (count - 1) and len(set(follows.values())) <= 1


def test_long_rounds_need_fewer_rounds():
  timed = [timing.Timed("a", lambda: None, lambda out: None)]
  short = timing.Budget(min_rounds=5, max_rounds=9, round_budget_s=0.0, min_sample_s=0.0, long_round_s=1e9)
  long = dataclasses.replace(short, long_round_s=0.0, min_rounds_long=2)
  assert len(timing.interleaved(timed, short)["a"]) == 5
  assert len(timing.interleaved(timed, long)["a"]) == 2


def test_missing_and_failing_peers_are_reported_not_fatal():
  variant = case_api.Variant(
    case_api.Case(
      "broken",
      "test",
      jl.mse,
      lambda rng, n: (rng.standard_normal(n, np.float32), rng.standard_normal(n, np.float32)),
      sizes=(8,),
      jnp=lambda p, t: jnp.sum(p[: len(p) + 1] @ t[:3]),  # a shape error: this peer fails to trace
      torch=lambda p, t: p,
    ),
    8,
    "float32",
    "forward",
  )
  inputs = run._inputs(variant, seed=0)
  record = run.measure_variant(
    variant, inputs, jax.devices("cpu")[0], (None, None, "torch not importable (test)"), None, timing.SMOKE
  )
  status = {name: impl["status"] for name, impl in record["implementations"].items()}
  assert status == {"jaxloss": "ok", "jnp": "error", "optax": "missing", "torch": "missing"}
  assert record["implementations"]["torch"]["reason"] == "torch not importable (test)"
  assert record["ratios"] == {"jnp": None, "optax": None, "torch": None}
  assert record["implementations"]["jaxloss"]["bandwidth_fraction"] is None


def test_tiny_run_end_to_end(tmp_path, capsys):
  out = tmp_path / "cpu.json"
  args = ["--smoke", "--filter", "/(mse|mae|gaussian_nll)/", "--out", str(out), "--no-progress"]
  assert cli.main(args) == 0
  printed = capsys.readouterr().out
  assert "regression/gaussian_nll/float32/value_and_grad/1e3" in printed and "/torch" in printed

  document = json.loads(out.read_text())
  assert schema.errors(document) == []
  assert [r["id"].split("/")[1] for r in document["results"]] == ["mse"] * 2 + ["mae"] * 2 + ["gaussian_nll"] * 2
  assert document["complete"] and document["backends"][0]["platform"] == "cpu"
  assert document["machine"]["cpu_model"] and document["versions"]["jax"] == jax.__version__
  assert len(document["load_start"]) == 3
  mse, mae = document["results"][1], document["results"][3]
  assert all(impl["status"] == "ok" for impl in mse["implementations"].values())
  assert all(mse["ratios"][p] > 0 for p in case_api.PEERS)
  assert mae["implementations"]["optax"] == {"status": "missing", "reason": "optax has no equivalent of mae"}
  assert mae["implementations"]["jaxloss"]["temp_bytes"] >= 0

  broken = copy.deepcopy(document)
  broken["results"][0]["mode"] = "backward"
  del broken["results"][1]["implementations"]["jaxloss"]["median_s"]
  broken["backends"][0]["probe"]["gbps"] = "fast"
  assert len(schema.errors(broken)) == 3

  path, figures = report.render([out], tmp_path / "report")
  text = path.read_text()
  assert "| source | case | size | jaxloss ms | %bw | /jnp | /optax | /torch |" in text
  assert "| cpu · " in text and "`regression/mae/float32/forward/1e3`" in text
  assert figures and all((tmp_path / "report" / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in figures)
  assert all(f"]({f})" in text for f in figures)


def test_report_rejects_a_file_that_is_not_a_result(tmp_path):
  path = tmp_path / "other.json"
  path.write_text(json.dumps({"schema_version": 1}))
  with pytest.raises(ValueError, match="not a benchmark result file"):
    report.load([path])


def test_every_committed_top_level_result_file_is_a_benchmark_result():
  # `report` and notebook 05 read every *.json at the top of benchmarks/results: other formats live in subfolders.
  import pathlib

  results = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "results"
  paths = sorted(results.glob("*.json"))
  assert paths
  documents, rows = report.load(paths)
  assert len(documents) == len(paths) and all(d["results"] for d in documents) and rows


def test_peak_memory_runs_each_implementation_in_its_own_process(capsys):
  from benchmarks import peak_memory

  assert peak_memory.main(["--size", "16", "8", "40", "--calls", "1", "--only", "jaxloss", "naive"]) == 0
  out = capsys.readouterr().out
  assert "error" not in out
  rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
  assert set(rows) == {"jaxloss", "naive"} and rows["naive"][3] == "1.000"


def test_python_m_jaxloss_prints_exact_zeros_in_aligned_columns(capsys):
  from jaxloss import __main__ as demo

  demo.main()
  lines = capsys.readouterr().out.splitlines()
  table = lines[lines.index(next(line for line in lines if line.startswith("gradient at the kink"))) :][:4]
  assert not re.search(r"-0\.(?!\d)", "\n".join(lines)) and all(line.endswith("[0. 0. 0.]") for line in table[1:])
  assert len({line.index("jaxloss" if i == 0 else "[0. 0. 0.]") for i, line in enumerate(table)}) == 1
