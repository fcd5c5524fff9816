"""Losses under sharding, on 8 virtual CPU devices. Run by ``test_sharding.py`` in a
subprocess, because the device count must be set before JAX initialises:

    python tests/sharding_check.py

Prints one ``OK <check>`` line per passing check and fails with an AssertionError
otherwise.

* Data parallel: every row of ``DATA_PARALLEL`` (a loss and a maker of its inputs;
  one loss or more of every family: regression, fused, classification with class
  weights and ``ignore_index``, embedding, ranking, CTC, divergence) runs
  ``jit(value_and_grad(loss))`` on inputs sharded over the batch with a
  ``NamedSharding``, on a mesh with explicit axes (shardings in the types, the
  default of ``jax.make_mesh``) and on one with auto axes (XLA propagates them);
  value and gradients must equal the single-device result. The masks give the
  shards very different numbers of kept examples (one shard keeps none), so a
  mean of per-shard means would differ from the global mean; the check asserts
  that it does, so it cannot pass by accident.
  More set losses (``SET_LOSSES``: clip, siglip, supcon, circle, mined
  triplets) and the ``UNDER_SET_MESH`` rows run the same check with explicit
  axes under ``jax.set_mesh``.
* Vocabulary parallel: ``linear_cross_entropy`` inside ``jax.shard_map`` with the
  weight and bias sharded over the vocabulary on a ``model`` mesh axis
  (``axis_name="model"``) and tokens over ``data``, equal to the unsharded loss
  in value and in gradients, and compiled without any all-gather.
* Token sharded: ``linear_cross_entropy`` with the tokens sharded on an explicit
  mesh axis and the weight replicated, both orderings and every option, equal to
  the naive loss; the token ordering reduces the weight gradient once, after its
  loop.

A new family joins the data-parallel check with one ``Row`` in ``DATA_PARALLEL``.
"""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import jaxloss as jl

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

DEVICES = 8
BATCH = 32  # 4 examples per shard
RTOL, ATOL = 1e-5, 1e-6


@dataclasses.dataclass(frozen=True)
class Row:
  """One loss in the data-parallel check.

  Attributes:
    loss: the public loss.
    make: ``make(rng, batch) -> args``: positional inputs (NumPy) whose leading
      axis is the batch, except the ``replicated`` ones.
    kwargs: options passed with every call.
    replicated: indices of inputs without a batch axis (a weight matrix, class
      weights): replicated on every device instead of sharded.
    keywords: names of the last ``len(keywords)`` inputs of ``make``, passed by
      keyword (array options such as ``class_weights`` or CTC's lengths).
    item_axes: trailing axes ``where`` has beyond the per-example loss (1 for a
      ranking loss, whose mask is over list items): size 1, so a whole list is masked.
  """

  loss: Callable[..., Any]
  make: Callable[[np.random.Generator, int], tuple]
  kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
  replicated: tuple[int, ...] = ()
  keywords: tuple[str, ...] = ()
  item_axes: int = 0

  def __call__(self, *inputs, **options):
    positional = len(inputs) - len(self.keywords)
    keywords = dict(zip(self.keywords, inputs[positional:], strict=True))
    return self.loss(*inputs[:positional], **keywords, **self.kwargs, **options)


def _pair(rng, batch):
  return rng.normal(size=(batch, 3)), rng.normal(size=(batch, 3))


def _gaussian(rng, batch):
  return (*_pair(rng, batch), rng.uniform(0.5, 2.0, size=(batch, 3)))


def _tokens(rng, batch, d=6, vocab=40):
  return rng.normal(size=(batch, d)), rng.normal(size=(vocab, d)) / np.sqrt(d), rng.integers(0, vocab, size=batch)


IGNORE = -100


def _classes(rng, batch, classes=5):
  """Logits, labels with some ``IGNORE``, and class weights (replicated)."""
  labels = np.where(rng.uniform(size=batch) < 0.2, IGNORE, rng.integers(0, classes, size=batch))
  return rng.normal(size=(batch, classes)), labels, rng.uniform(0.5, 2.0, size=classes)


def _triplets(rng, batch):
  return tuple(rng.normal(size=(batch, 4)) for _ in range(3))


def _labelled_set(rng, batch):
  return rng.normal(size=(batch, 4)), rng.integers(0, 6, size=batch)


def _pair_set(rng, batch):
  x = rng.normal(size=(batch, 4))
  return x, x + 0.5 * rng.normal(size=(batch, 4))


def _lists(rng, batch, items=6):
  return rng.normal(size=(batch, items)), rng.integers(0, 3, size=(batch, items)).astype(np.float64)


def _sequences(rng, batch, steps=8, classes=5, max_labels=3):
  """CTC logits ``[B, T, K]``, labels ``[B, N]`` (no blank) and both lengths."""
  logits = rng.normal(size=(batch, steps, classes))
  labels = rng.integers(1, classes, size=(batch, max_labels))
  logit_lengths = rng.integers(max_labels + 1, steps + 1, size=batch)
  return logits, labels, logit_lengths, rng.integers(0, max_labels + 1, size=batch)


def _distributions(rng, batch, classes=5):
  log_predictions = jax.nn.log_softmax(rng.normal(size=(batch, classes)))
  return np.asarray(log_predictions), np.asarray(jax.nn.softmax(rng.normal(size=(batch, classes))))


DATA_PARALLEL = {
  "mse": Row(jl.mse, _pair),
  "mae": Row(jl.mae, _pair),
  "huber": Row(jl.huber, _pair, {"delta": 0.5}),
  "gaussian_nll": Row(jl.gaussian_nll, _gaussian),
  "linear_cross_entropy": Row(
    jl.linear_cross_entropy, _tokens, {"chunk_size": 16, "label_smoothing": 0.1}, replicated=(1,)
  ),
  # The mean divides by the summed class weights of the kept labels.
  "cross_entropy": Row(
    jl.cross_entropy, _classes, {"ignore_index": IGNORE}, replicated=(2,), keywords=("class_weights",)
  ),
  "triplet_margin": Row(jl.triplet_margin, _triplets, {"margin": 1.0}),
  # A set loss: every anchor against the whole (sharded) batch.
  "ntxent": Row(jl.ntxent, _labelled_set),
  "softmax_ranking": Row(jl.softmax_ranking, _lists, item_axes=1),
  "ctc": Row(jl.ctc, _sequences, keywords=("logit_lengths", "label_lengths")),
  "kl_divergence": Row(jl.kl_divergence, _distributions),
}


# More set losses (every member against the whole sharded batch), checked with explicit axes under `jax.set_mesh`
# only: there iota and constants are typed replicated on the mesh, so a select or a sort pairing them with the
# sharded batch is a ShardingTypeError (a superset of the failures without the mesh). Semi-hard mining sorts and
# searches each anchor's distances.
SET_LOSSES = {
  "clip": Row(jl.clip, _pair_set, {"label_smoothing": 0.1}),
  "siglip": Row(jl.siglip, _pair_set, {"temperature": 3.0, "bias": -2.0}),
  "supcon": Row(jl.supcon, _labelled_set),
  "circle": Row(jl.circle, _labelled_set, {"gamma": 16.0}),
  "batch_triplet": Row(jl.batch_triplet, _labelled_set, {"mining": "semi_hard"}),
}


# Data-parallel rows also checked under `jax.set_mesh`: a constant there is typed replicated on the mesh, so a
# cond branch or a scan state built from constants (triplet_margin's range check, CTC's recursion) must be typed
# sharded as the batch.
UNDER_SET_MESH = ("triplet_margin", "ctc")


def _uneven_mask(batch):
  """Shard k (4 consecutive examples) keeps 4, 1, 0, 2, 4, 1, 3, 1 examples."""
  kept = [4, 1, 0, 2, 4, 1, 3, 1]
  per_shard = batch // DEVICES
  return np.concatenate([np.arange(per_shard) < k for k in kept])


def _to_jax(a):
  a = np.asarray(a)
  return jnp.asarray(a, jnp.float32) if np.issubdtype(a.dtype, np.floating) else jnp.asarray(a)


def check_data_parallel(name, row, mesh, mode):
  rng = np.random.default_rng(sum(map(ord, name)))
  args = tuple(_to_jax(a) for a in row.make(rng, BATCH))
  loss_shape = row(*args, reduction="none").shape
  option_shape = (BATCH,) + (1,) * (len(loss_shape) - 1)
  weights = jnp.asarray(rng.uniform(0.5, 2.0, size=option_shape), jnp.float32)
  where = jnp.asarray(_uneven_mask(BATCH).reshape(option_shape + (1,) * row.item_axes))
  diff = tuple(i for i, a in enumerate(args) if jnp.issubdtype(a.dtype, jnp.floating))

  def loss(*a):
    return row(*a[:-2], weights=a[-2], where=a[-1])

  value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=diff))
  single = value_and_grad(*args, weights, where)

  by_batch = NamedSharding(mesh, P("data"))
  replicated = NamedSharding(mesh, P())
  placed = [jax.device_put(a, replicated if i in row.replicated else by_batch) for i, a in enumerate(args)]
  sharded = value_and_grad(*placed, jax.device_put(weights, by_batch), jax.device_put(where, by_batch))
  assert len(sharded[0].sharding.device_set) == DEVICES, "the computation did not run on the mesh"
  assert len(placed[0].sharding.device_set) == DEVICES
  for got, want in zip(jax.tree.leaves(sharded), jax.tree.leaves(single), strict=True):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), RTOL, ATOL, err_msg=name)

  # The global mean is not the mean of the shards' means: the check is meaningful.
  shard = BATCH // DEVICES
  means = []
  for k in range(DEVICES):
    part = slice(k * shard, (k + 1) * shard)
    sliced = [a if i in row.replicated else a[part] for i, a in enumerate(args)]
    means.append(float(loss(*sliced, weights[part], where[part])))
  assert abs(np.mean(means) - float(single[0])) > 1e-3 * abs(float(single[0])), (name, means, float(single[0]))
  print(f"OK data-parallel {mode} {name}", flush=True)


def check_vocab_parallel():
  """linear_cross_entropy with the vocabulary on the `model` axis and tokens on `data`."""
  mesh = jax.make_mesh((2, 4), ("data", "model"))
  rng = np.random.default_rng(0)
  tokens, d, vocab = 12, 5, 64  # 16 classes per model shard
  hidden = jnp.asarray(rng.normal(size=(tokens, d)), jnp.float32)
  weight = jnp.asarray(rng.normal(size=(vocab, d)) / np.sqrt(d), jnp.float32)
  bias = jnp.asarray(rng.normal(size=(vocab,)), jnp.float32)
  labels = jnp.asarray(np.r_[rng.integers(0, vocab, size=tokens - 2), -100, 63])
  weights = jnp.asarray(rng.uniform(0.5, 2.0, size=tokens), jnp.float32)
  where = jnp.asarray(np.arange(tokens) % 5 != 3)
  options = {"chunk_size": 6, "label_smoothing": 0.1, "z_loss": 1e-2, "ignore_index": -100}

  def unsharded(hidden, weight, bias):
    return jl.linear_cross_entropy(hidden, weight, labels, bias=bias, weights=weights, where=where, **options)

  @functools.partial(
    jax.shard_map,
    mesh=mesh,
    in_specs=(P("data"), P("model"), P("model"), P("data"), P("data"), P("data")),
    out_specs=P(),
  )
  def vocab_parallel(hidden, weight, bias, labels, weights, where):
    # Sums over the local tokens, then a global weighted mean over the token shards.
    total = jl.linear_cross_entropy(
      hidden, weight, labels, bias=bias, axis_name="model", reduction="sum", weights=weights, where=where, **options
    )
    kept = (labels != options["ignore_index"]) & where
    count = jnp.sum(jnp.where(kept, weights, jnp.zeros((), weights.dtype)))
    total, count = lax.psum((total, count), "data")
    return total / count

  put = lambda a, spec: jax.device_put(a, NamedSharding(mesh, spec))
  per_token = [put(a, P("data")) for a in (labels, weights, where)]
  sharded = lambda h, w, b: vocab_parallel(h, w, b, *per_token)
  want = jax.jit(jax.value_and_grad(unsharded, argnums=(0, 1, 2)))(hidden, weight, bias)
  f = jax.jit(jax.value_and_grad(sharded, argnums=(0, 1, 2)))
  args = (put(hidden, P("data")), put(weight, P("model")), put(bias, P("model")))
  got = f(*args)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), RTOL, ATOL, err_msg="vocab-parallel")
  d_weight = got[1][1]
  assert d_weight.sharding.is_equivalent_to(NamedSharding(mesh, P("model")), 2), f"weight gradient: {d_weight.sharding}"
  hlo = f.lower(*args).compile().as_text()
  assert "all-gather" not in hlo, "the vocabulary-parallel loss must not gather the weight or the logits"
  print("OK vocab-parallel linear_cross_entropy", flush=True)


def check_token_sharded():
  """linear_cross_entropy with the tokens sharded on an explicit `data` axis (no shard_map, weight replicated):
  both orderings, every option, equal to the naive loss on one device; the token ordering reduces the weight
  gradient once, outside its loop over token blocks."""
  mesh = jax.make_mesh((DEVICES,), ("data",), axis_types=(jax.sharding.AxisType.Explicit,))
  rng = np.random.default_rng(11)
  tokens, d, vocab = 8 * DEVICES, 5, 40  # 8 tokens per device: 3 blocks of at most 3
  hidden = jnp.asarray(rng.normal(size=(tokens, d)), jnp.float32)
  weight = jnp.asarray(rng.normal(size=(vocab, d)) / np.sqrt(d), jnp.float32)
  bias = jnp.asarray(rng.normal(size=(vocab,)), jnp.float32)
  labels = jnp.asarray(np.where(rng.uniform(size=tokens) < 0.2, -100, rng.integers(0, vocab, size=tokens)))
  weights = jnp.asarray(rng.uniform(0.5, 2.0, size=tokens), jnp.float32)
  where = jnp.asarray(_uneven_mask(tokens))
  class_weights = jnp.asarray(rng.uniform(0.5, 2.0, size=vocab), jnp.float32)
  options = {"label_smoothing": 0.1, "z_loss": 1e-2, "softcap": 2.0, "ignore_index": -100}
  options["class_weights"] = class_weights
  for reduction in ("mean", "sum"):

    def naive(h, w, b, y, ws, m, reduction=reduction):
      return jl.cross_entropy(h @ w.T + b[None, :], y, weights=ws, where=m, reduction=reduction, **options)

    want = jax.jit(jax.value_and_grad(naive, argnums=(0, 1, 2)))(hidden, weight, bias, labels, weights, where)
    with jax.set_mesh(mesh):
      by_tokens, replicated = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
      args = (hidden, weight, bias, labels, weights, where)
      args = tuple(jax.device_put(a, replicated if i in (1, 2) else by_tokens) for i, a in enumerate(args))
      for ordering in ("tokens", "vocabulary"):

        def fused(h, w, b, y, ws, m, ordering=ordering, reduction=reduction):
          kw = {"weights": ws, "where": m, "reduction": reduction, "chunk_size": 3, "ordering": ordering}
          return jl.linear_cross_entropy(h, w, y, bias=b, **kw, **options)

        f = jax.jit(jax.value_and_grad(fused, argnums=(0, 1, 2)))
        got = f(*args)
        assert len(got[1][0].sharding.device_set) == DEVICES, "the computation did not run on the mesh"
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
          np.testing.assert_allclose(np.asarray(g), np.asarray(w), RTOL, ATOL, err_msg=f"{ordering} {reduction}")
        if ordering == "tokens":
          reductions = [line for line in f.lower(*args).compile().as_text().splitlines() if " all-reduce(" in line]
          assert reductions and not any("while/body" in line for line in reductions), reductions
        print(f"OK token-sharded linear_cross_entropy {ordering} {reduction}", flush=True)


def check_readme_examples():
  """The README's "Sharded training" examples, run with inputs defined, equal the unsharded loss."""
  import pathlib
  import re

  text = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
  section = text.split("## Sharded training", 1)[1].split("\n## ", 1)[0]
  data_parallel, vocab_parallel = re.findall(r"```python\n(.*?)```", section, flags=re.S)[:2]
  rng = np.random.default_rng(7)
  with jax.numpy_dtype_promotion("standard"):
    features = jnp.asarray(rng.normal(size=(BATCH, 6)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 5, BATCH))
    mask = jnp.asarray(_uneven_mask(BATCH))
    params = jnp.asarray(rng.normal(size=(6, 5)), jnp.float32)
    scope = {"features": features, "labels": labels, "mask": mask, "params": params}
    exec(data_parallel, scope)
    value, grad = scope["step"](scope["params"], scope["features"], scope["labels"], scope["mask"])
    want = jax.value_and_grad(lambda p: jl.cross_entropy(features @ p, labels, where=mask))(params)
    np.testing.assert_allclose(value, want[0], RTOL, ATOL)
    np.testing.assert_allclose(grad, want[1], RTOL, ATOL)
    print("OK readme data-parallel", flush=True)

    hidden = jnp.asarray(rng.normal(size=(BATCH, 6)), jnp.float32)
    weight = jnp.asarray(rng.normal(size=(40, 6)), jnp.float32)
    tokens = jnp.asarray(rng.integers(0, 40, BATCH))
    scope = {"hidden": hidden, "weight": weight, "labels": tokens, "jax": jax, "jl": jl, "P": P}
    scope["NamedSharding"] = NamedSharding
    exec(vocab_parallel, scope)
    value, grads = scope["value"], scope["grads"]
    want = jax.value_and_grad(lambda h, w: jl.cross_entropy(h @ w.T, tokens), argnums=(0, 1))(hidden, weight)
    np.testing.assert_allclose(value, want[0], RTOL, ATOL)
    for g, w in zip(grads, want[1], strict=True):
      np.testing.assert_allclose(g, w, RTOL, ATOL)
    print("OK readme vocab-parallel", flush=True)


# Global negatives: set losses with the batch sharded over `data` inside shard_map (axis_name="data").
# (loss, second input: "labels" or "pairs", traced numeric options (differentiated), constant options)
GLOBAL_NEGATIVES = {
  "ntxent": (jl.ntxent, "labels", {"temperature": 0.3}, {}),
  "supcon": (jl.supcon, "labels", {"temperature": 0.3}, {}),
  "clip": (jl.clip, "pairs", {"temperature": 0.3}, {"label_smoothing": 0.1}),
  "siglip": (jl.siglip, "pairs", {"temperature": 3.0, "bias": -2.0}, {}),
}


def check_global_negatives(mesh):
  """Each set loss with ``axis_name`` inside ``shard_map`` equals the unsharded loss over the whole batch.

  Value (mean; sum and the local rows' ``"none"``) and gradients with respect
  to the embeddings and the traced temperature / bias, with weights and an
  uneven mask (one shard keeps nothing). Scoring each shard against its own
  rows only would give other gradients: the check asserts that, so it cannot
  pass by accident.
  """
  rng = np.random.default_rng(16)
  d = 6
  first = jnp.asarray(rng.normal(size=(BATCH, d)), jnp.float32)
  labels = jnp.asarray(rng.integers(0, 6, BATCH))  # some classes have one member (anchors without positives)
  pairs = jnp.asarray(first + 0.5 * rng.normal(size=(BATCH, d)), jnp.float32)
  weights = jnp.asarray(rng.uniform(0.5, 2.0, size=BATCH), jnp.float32)
  where = jnp.asarray(_uneven_mask(BATCH))
  by_batch = NamedSharding(mesh, P("data"))
  put = lambda a: jax.device_put(a, by_batch)
  for name, (fn, kind, traced, constant) in GLOBAL_NEGATIVES.items():
    second = labels if kind == "labels" else pairs
    options = {k: jnp.float32(v) for k, v in traced.items()}
    argnums = (0, 2) if kind == "labels" else (0, 1, 2)

    def unsharded(x, z, options, reduction="mean", w=weights, m=where, fn=fn, constant=constant):
      return fn(x, z, **options, **constant, reduction=reduction, weights=w, where=m)

    @functools.partial(
      jax.shard_map,
      mesh=mesh,
      in_specs=(P("data"), P("data"), P(), P("data"), P("data")),
      out_specs=(P(), (P(), P("data"))),
    )
    def sharded(x, z, options, w, m, fn=fn, constant=constant):
      run = functools.partial(fn, x, z, **options, **constant, axis_name="data", weights=w, where=m)
      return run(), (run(reduction="sum"), run(reduction="none"))

    want = jax.value_and_grad(unsharded, argnums=argnums)(first, second, options)
    placed = (put(first), put(second), options, put(weights), put(where))
    (value, (total, rows)), grads = jax.jit(jax.value_and_grad(sharded, argnums=argnums, has_aux=True))(*placed)
    for g, w in zip(jax.tree.leaves((value, grads)), jax.tree.leaves(want), strict=True):
      np.testing.assert_allclose(np.asarray(g), np.asarray(w), RTOL, ATOL, err_msg=name)
    np.testing.assert_allclose(total, unsharded(first, second, options, "sum"), RTOL, ATOL, err_msg=name)
    np.testing.assert_allclose(rows, unsharded(first, second, options, "none"), RTOL, ATOL, err_msg=name)

    # Against its own shard's rows only (the per-shard loss), the gradient is another.
    def per_shard(x, z, options, fn=fn, constant=constant):
      split = lambda a: a.reshape(DEVICES, BATCH // DEVICES, *a.shape[1:])  # leading axis: independent sets
      w, m = split(weights), split(where)
      return fn(split(x), split(z), **options, **constant, reduction="sum", weights=w, where=m)

    local = jax.grad(per_shard)(first, second, options)
    assert np.abs(np.asarray(local) - np.asarray(want[1][0])).max() > 1e-3, name
    print(f"OK global-negatives {name}", flush=True)


def siglip_ring_memory(mesh, batch, d=128):
  """XLA temp bytes per device of ``value_and_grad`` of the sharded ``siglip`` (compiled, not run)."""
  spec = jax.ShapeDtypeStruct((batch, d), jnp.float32, sharding=NamedSharding(mesh, P(mesh.axis_names[0])))

  @functools.partial(jax.shard_map, mesh=mesh, in_specs=(P("data"), P("data")), out_specs=P())
  def loss(x, y):
    return jl.siglip(x, y, axis_name="data")

  compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(spec, spec).compile()
  return compiled.memory_analysis().temp_size_in_bytes


def check_siglip_ring_memory():
  """The ring keeps a few ``b x b`` blocks per device (``b = B / n``), never ``b x B`` (gathered) or ``B x B``."""
  batch = 4096
  sizes = {}
  for n in (2, 4, 8):
    mesh = jax.make_mesh((n,), ("data",), devices=jax.devices()[:n])
    sizes[n] = siglip_ring_memory(mesh, batch)
    block = (batch // n) ** 2 * 4  # one b x b float32 block
    print(f"siglip ring B={batch} n={n}: temp {sizes[n] / 2**20:.1f} MiB per device = {sizes[n] / block:.2f} blocks")
    assert sizes[n] < 3 * block, (n, sizes[n], block)
  # O(b^2): halving b about quarters the memory (an all-gather of the columns would only halve it).
  assert sizes[8] < 0.4 * sizes[4] and sizes[4] < 0.4 * sizes[2], sizes
  print("OK siglip ring memory", flush=True)


def check_readme_global_negatives():
  """The README's "Global negatives" example, run with inputs defined, equals the unsharded ``clip``."""
  import pathlib
  import re

  text = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
  section = text.split("### Global negatives under data parallelism", 1)[1].split("\n## ", 1)[0]
  (example,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
  rng = np.random.default_rng(3)
  images, texts = (jnp.asarray(rng.normal(size=(BATCH, 6)), jnp.float32) for _ in range(2))
  log_scale = jnp.log(jnp.float32(1 / 0.07))
  scope = {"images": images, "texts": texts, "log_scale": log_scale}
  with jax.numpy_dtype_promotion("standard"):
    exec(example, scope)
  unsharded = lambda u, v, s: jl.clip(u, v, temperature=jnp.exp(-s))
  want = jax.value_and_grad(unsharded, argnums=(0, 1, 2))(images, texts, log_scale)
  for g, w in zip(jax.tree.leaves((scope["value"], scope["grads"])), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), RTOL, ATOL)
  print("OK readme global-negatives", flush=True)


def main():
  assert jax.device_count() == DEVICES, jax.devices()
  check_readme_examples()
  check_readme_global_negatives()
  for mode in ("explicit", "auto"):
    # Explicit axes (make_mesh's default): shardings are part of the types; Auto: XLA propagates them.
    axis_type = jax.sharding.AxisType.Explicit if mode == "explicit" else jax.sharding.AxisType.Auto
    mesh = jax.make_mesh((DEVICES,), ("data",), axis_types=(axis_type,))
    for name, row in DATA_PARALLEL.items():
      check_data_parallel(name, row, mesh, mode)
  mesh = jax.make_mesh((DEVICES,), ("data",), axis_types=(jax.sharding.AxisType.Explicit,))
  with jax.set_mesh(mesh):
    for name, row in SET_LOSSES.items():
      check_data_parallel(name, row, mesh, "explicit-set_mesh")
    for name in UNDER_SET_MESH:
      check_data_parallel(name, DATA_PARALLEL[name], mesh, "explicit-set_mesh")
  check_vocab_parallel()
  check_token_sharded()
  check_global_negatives(jax.make_mesh((DEVICES,), ("data",)))
  check_siglip_ring_memory()


if __name__ == "__main__":
  main()
