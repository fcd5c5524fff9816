# %% [markdown]
# # Benchmarks: how fast jaxloss is, against plain jnp, optax and PyTorch
#
# This notebook loads the benchmark result files committed under `benchmarks/results/` (written by
# `python -m benchmarks --out FILE.json`; every file there is read, one per machine) and plots them: which
# machines and software produced them, jaxloss's time per call against the input size, the ratio of its time
# to each peer's (the plain `jnp` expression of the same loss, optax, `torch.nn.functional`), and the fraction
# of the machine's memory bandwidth each implementation reaches. When several files (or backends) are
# present they are shown side by side. It reads any file that follows `benchmarks/schema.json`, whatever cases
# it holds; how the numbers are measured is in `benchmarks/README.md`.

# %%
import collections
import os
import pathlib
import sys

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

here = pathlib.Path.cwd().resolve()
root = next(p for p in [here, *here.parents] if (p / "benchmarks" / "schema.json").exists())
sys.path.insert(0, str(root))  # the benchmark harness is not installed with jaxloss; its loader validates files
from benchmarks import report  # noqa: E402

plt.rcParams.update({"figure.dpi": 80})

results = pathlib.Path(os.environ.get("JAXLOSS_BENCHMARK_RESULTS", root / "benchmarks" / "results"))
paths = sorted(results.glob("*.json"))
if not paths:
  raise FileNotFoundError(f"no result file in {results}: run `python -m benchmarks --quick --out {results}/cpu.json`")
documents, rows = report.load(paths)  # validates each file against the schema; one "source" per file and backend
sources = list(dict.fromkeys(r["source"] for r in rows))
modes = [m for m in ("forward", "value_and_grad") if any(r["mode"] == m for r in rows)]
peers = ("jnp", "optax", "torch")
print(f"{len(paths)} file(s), {len(sources)} source(s), {len(rows)} results")

# %% [markdown]
# ## Where the numbers come from
#
# The load average is printed because the harness runs on whatever machine it is given: on a machine whose
# load exceeds its core count, every time is inflated, and torch's (whose OpenMP threads wait for each other at
# barriers) far more than XLA's. Ratios measured within one run remain comparable; absolute times do not.

# %%
for document in documents:
  machine, versions = document["machine"], document["versions"]
  print(f"{pathlib.Path(document['_path']).name}: {document['created']}, mode {document['options']['mode']}")
  print(f"  cpu {machine['cpu_model']} ({machine['cpu_count']} cores), gpu {machine['gpu_model']}, {machine['os']}")
  torch = f"torch {versions['torch']} ({machine['torch_threads']} threads)"
  print(f"  jax {versions['jax']}, optax {versions['optax']}, {torch}")
  print(f"  load average at start {document['load_start'][0]}, at end {document['load_end'][0]}", end="")
  busiest = max(document["load_start"][0], document["load_end"][0])
  print("  <- a busy machine: compare ratios, not times" if busiest > machine["cpu_count"] else "")
  for backend in document["backends"]:
    label = document["_sources"][backend["platform"]]
    print(f"  source '{label}': probe bandwidth {backend['probe']['gbps']:.1f} GB/s")

# %% [markdown]
# ## Time per call against size
#
# jaxloss's median time per call for every case, forward (the loss value) and `value_and_grad`; solid lines
# are float32, dashed lines bfloat16. A memory-bound loss should grow linearly with the size (slope 1 on these
# log-log axes) once the size is past the fixed per-call overhead.


# %%
def jaxloss_time(row):
  return row["implementations"]["jaxloss"].get("median_s")


cases = list(dict.fromkeys(r["case"] for r in rows))
colors = {case: plt.cm.tab20((2 * i) % 20 + (i // 10) % 2) for i, case in enumerate(cases)}  # dark shades first
fig, axes = plt.subplots(
  len(sources), len(modes), figsize=(6 * len(modes) + 2, 4 * len(sources)), squeeze=False, sharey=True
)
for (source, mode), ax in zip([(s, m) for s in sources for m in modes], axes.flat, strict=True):
  series = collections.defaultdict(list)
  for r in rows:
    if r["source"] == source and r["mode"] == mode and jaxloss_time(r) is not None:
      series[r["case"], r["dtype"]].append((r["elements"], jaxloss_time(r) * 1e3))
  for (case, dtype), points in series.items():
    x, y = zip(*sorted(points), strict=True)
    style = "-" if dtype == "float32" else "--"
    ax.loglog(x, y, style, marker="o", ms=4, color=colors[case], label=case if dtype == "float32" else None)
  ax.set(title=f"{source}: {mode}", xlabel="elements", ylabel="ms per call")
  ax.grid(alpha=0.3, which="both")
axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Ratio to each peer
#
# For each case at its largest size (float32 where measured), jaxloss's time divided by each peer's: the median
# over rounds of the per-round ratio, so noise that hits both alike cancels. Below 1 jaxloss is faster; the
# dashed red line is the 5% tolerance the harness flags. A peer without the loss (optax has no `mae`, for
# instance) has no point. Against `jnp` the ratio is the cost of jaxloss's machinery: input validation, masks,
# weights, the custom derivatives at kinks.


# %%
def largest(mode):
  """Each (source, case)'s result at its largest size for ``mode``, in float32 when there is one."""
  chosen = {}
  for r in rows:
    if r["mode"] != mode:
      continue
    key = (r["source"], r["case"])
    rank = (r["dtype"] == "float32", r["elements"])
    if key not in chosen or rank > (chosen[key]["dtype"] == "float32", chosen[key]["elements"]):
      chosen[key] = r
  return chosen


markers = {"jaxloss": "o", "jnp": "s", "optax": "D", "torch": "^"}
impl_colors = {"jaxloss": "C0", "jnp": "C1", "optax": "C2", "torch": "C3"}


def dot_plots(values, xlabel, label="{}", reference=1.0, tolerance=None):
  """One panel per source and mode, one row per case at its largest size: ``values(row) -> {implementation: x}``."""
  width = 5.5 * len(sources) * len(modes)
  _, axes = plt.subplots(1, len(sources) * len(modes), figsize=(width, 1.5 + 0.3 * len(cases)), squeeze=False)
  for ax, (source, mode) in zip(axes.flat, [(s, m) for s in sources for m in modes], strict=True):
    chosen = largest(mode)
    points = collections.defaultdict(list)
    for i, case in enumerate(cases):
      for impl, x in values(chosen[source, case]).items() if (source, case) in chosen else ():
        if x is not None:
          points[impl].append((x, i))
    for impl, xy in points.items():
      x, y = zip(*xy, strict=True)
      ax.scatter(x, y, marker=markers[impl], color=impl_colors[impl], label=label.format(impl), alpha=0.8)
    ax.axvline(reference, color="k", lw=0.8)
    if tolerance:
      ax.axvline(tolerance, color="tab:red", lw=0.8, ls="--")
    names = [f"{c} ({chosen[source, c]['size_label']})" if (source, c) in chosen else c for c in cases]
    ax.set_yticks(range(len(cases)), names)
    ax.invert_yaxis()
    ax.set(title=f"{source}: {mode}", xlabel=xlabel, xscale="log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.grid(alpha=0.3, which="both", axis="x")
    ax.legend(fontsize=7)
  plt.tight_layout()
  plt.show()


dot_plots(
  lambda r: {peer: r["ratios"][peer] for peer in peers},
  "time ratio (below 1: jaxloss faster)",
  label="jaxloss / {}",
  tolerance=1.05,
)

# %% [markdown]
# The same ratios as numbers: the median over every variant (case, dtype, mode, size), and the variants where
# jaxloss is more than 5% slower than a peer:

# %%
for source in sources:
  mine = [r for r in rows if r["source"] == source]
  print(f"{source}: median ratio over all {len(mine)} variants", end="")
  for peer in peers:
    ratios = [r["ratios"][peer] for r in mine if r["ratios"][peer] is not None]
    print(f", jaxloss / {peer} {np.median(ratios):.2f} ({len(ratios)})" if ratios else f", no {peer}", end="")
  print()
slower = report.slower(rows)
print(f"\n{len(slower)} (variant, peer) pairs where jaxloss is more than 5% slower; the 20 largest ratios:")
for r, peer, ratio in sorted(slower, key=lambda item: -item[2])[:20]:
  print(f"  {r['source']:24} {r['id']:48} jaxloss / {peer} = {ratio:.2f}")

# %% [markdown]
# ## Fraction of the memory bandwidth
#
# Each case has a model of the least memory traffic any implementation needs (read each input once, write each
# gradient once). Dividing it by the time gives the achieved bandwidth, shown here as a fraction of what the
# harness's probe (the faster of a streaming sum and a triad `2a + b` over 10^8 floats, 2.5·10^7 with `--quick`)
# reached on the same device in the same run. Close to 1 means the loss runs as fast as the memory allows.
# Inputs small enough to stay in the CPU's cache can exceed 1: the probe measures memory, not cache.

# %%
dot_plots(
  lambda r: {impl: r["implementations"][impl].get("bandwidth_fraction") for impl in ("jaxloss", *peers)},
  "fraction of the probe's bandwidth",
)

# %% [markdown]
# ## What to take away
#
# - Read the ratios, not the absolute times: the harness interleaves jaxloss and its peers round by round, so
#   the ratios survive a noisy or shared machine far better than the times do. Check the load figures first.
# - `jaxloss / jnp` is the price of jaxloss's guarantees (validation, masking, exact kink gradients); near 1 it
#   costs nothing once XLA has compiled it. Against optax and torch the comparison is between implementations.
# - The bandwidth fraction says how much faster a loss could possibly get: a memory-bound loss near 1 is done.
# - To add a machine, run `python -m benchmarks --out benchmarks/results/<machine>.json` there, commit the file
#   and rerun this notebook (`python notebooks/_build.py 05`); `python -m benchmarks report FILE.json ...`
#   writes the full markdown report with a plot per loss family.
