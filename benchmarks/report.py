"""``python -m benchmarks report FILE.json [...]``: merge result files into markdown and PNG plots.

Each backend of each file is a *source* (``cpu · AMD EPYC``, ``gpu · NVIDIA
H100``, ...). The report has a machines table, headline tables (every case at
its largest size, float32: time, fraction of bandwidth, ratio to each peer),
compile times against the compiled peers, the list of variants where jaxloss
is slower than a peer by more than 5%, every result, and plots: time vs size
per loss, ratio to each peer, fraction of bandwidth, and the sources side by
side when there are several.
"""

from __future__ import annotations

import argparse
import collections
import json
import pathlib
import re
from collections.abc import Sequence
from typing import Any

from benchmarks import schema
from benchmarks.case import IMPLEMENTATIONS, MODES, PEERS
from benchmarks.timing import SLOWER

Row = dict[str, Any]  # a result record with its "source" label added


def load(paths: Sequence[str | pathlib.Path]) -> tuple[list[dict[str, Any]], list[Row]]:
  """Validated documents, and every result tagged with its source label (unique across files)."""
  documents, rows, labels = [], [], collections.Counter()
  for path in paths:
    with open(path) as f:
      document = json.load(f)
    try:
      schema.validate(document)
    except ValueError as e:
      raise ValueError(f"{path}: not a benchmark result file: {e}") from None
    document["_path"] = str(path)
    document["_sources"] = {}
    for backend in document["backends"]:
      name = backend["device_kind"] if backend["platform"] != "cpu" else document["machine"]["cpu_model"]
      label = f"{backend['platform']} · {name}"
      labels[label] += 1
      if labels[label] > 1:
        label = f"{label} #{labels[label]}"
      document["_sources"][backend["platform"]] = label
      rows.extend({**r, "source": label} for r in document["results"] if r["backend"] == backend["platform"])
    documents.append(document)
  return documents, rows


def _ms(seconds: float | None) -> str:
  return "—" if seconds is None else f"{seconds * 1e3:.3g}"


def _pct(fraction: float | None) -> str:
  return "—" if fraction is None else f"{fraction:.0%}"


def _ratio(row: Row, peer: str) -> str:
  ratio = row["ratios"][peer]
  if ratio is None:
    return {"missing": "—", "error": "error"}.get(row["implementations"][peer]["status"], "—")
  return f"**{ratio:.2f}**" if ratio > SLOWER else f"{ratio:.2f}"


def _table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> list[str]:
  out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  out.extend("| " + " | ".join(line) + " |" for line in lines)
  return out


def headline(rows: Sequence[Row], mode: str, dtype: str = "float32") -> list[Row]:
  """Each (source, case)'s row at its largest size in ``mode`` and ``dtype``."""
  best: dict[tuple[str, str], Row] = {}
  for r in rows:
    if r["mode"] == mode and r["dtype"] == dtype:
      key = (r["source"], r["case"])
      if key not in best or r["elements"] > best[key]["elements"]:
        best[key] = r
  return list(best.values())


def slower(rows: Sequence[Row]) -> list[tuple[Row, str, float]]:
  """Every (row, peer, ratio) where jaxloss is slower than the peer by more than 5%."""
  return [(r, p, r["ratios"][p]) for r in rows for p in PEERS if r["ratios"][p] is not None and r["ratios"][p] > SLOWER]


COMPILE_SLOWER = 1.2  # the compile-time target: at most 1.2x the peer's trace + compile


def _compile_s(implementation: dict[str, Any]) -> float | None:
  if implementation.get("status") != "ok" or implementation.get("compile_s") is None:
    return None
  return (implementation.get("trace_s") or 0) + implementation["compile_s"]


def compile_times(rows: Sequence[Row], mode: str = "value_and_grad", dtype: str = "float32") -> list[list[str]]:
  """Per (source, case): jaxloss's trace + compile time and its ratio to each compiled peer's.

  One measurement per variant, so the figures are medians over the case's
  sizes (compile time hardly depends on the size; the median damps the noise).
  """
  import statistics

  by: dict[tuple[str, str], list[Row]] = collections.defaultdict(list)
  for r in rows:
    if r["mode"] == mode and r["dtype"] == dtype:
      by[r["source"], r["case"]].append(r)
  lines = []
  for (source, case), group in by.items():
    ours = [t for r in group if (t := _compile_s(r["implementations"]["jaxloss"])) is not None]
    if not ours:
      continue
    cells = [source, case, str(len(group)), _ms(statistics.median(ours))]
    for peer in ("jnp", "optax"):
      ratios = [
        a / b
        for r in group
        if (a := _compile_s(r["implementations"]["jaxloss"])) is not None
        and (b := _compile_s(r["implementations"].get(peer, {}))) is not None
        and b > 0
      ]
      ratio = statistics.median(ratios) if ratios else None
      cells.append("—" if ratio is None else f"**{ratio:.2f}**" if ratio > COMPILE_SLOWER else f"{ratio:.2f}")
    lines.append(cells)
  return lines


def _slug(text: str) -> str:
  return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def markdown(documents: Sequence[dict[str, Any]], rows: Sequence[Row], figures: Sequence[str]) -> str:
  out = ["# jaxloss benchmarks", ""]
  out.append(
    "Times are medians per call over interleaved rounds (jaxloss and its peers alternate, so machine noise hits"
    " them alike); ratios are jaxloss / peer, the median of per-round ratios: below 1 jaxloss is faster,"
    f" **bold** above {SLOWER:.2f}. `%bw` is the bytes-moved model over the time, as a fraction of the"
    " bandwidth probe measured on the same device in the same run. See benchmarks/README.md."
  )
  out += ["", "## Machines", ""]
  lines = []
  for d in documents:
    for backend in d["backends"]:
      load_range = f"{(d['load_start'] or ['?'])[0]} → {(d['load_end'] or ['?'])[0]}"
      lines.append(
        [
          d["_sources"][backend["platform"]],
          pathlib.Path(d["_path"]).name,
          d["options"]["mode"],
          d["created"],
          d["machine"]["cpu_model"],
          f"{d['machine']['cpu_count']}",
          d["machine"]["gpu_model"] or "—",
          f"jax {d['versions']['jax']}, optax {d['versions']['optax']}, torch {d['versions']['torch'] or '—'}",
          load_range,
          f"{backend['probe']['gbps']:.1f}",
        ]
      )
  header = ["source", "file", "run", "created", "CPU", "cores", "GPU", "versions", "load (1 min)", "probe GB/s"]
  out += _table(header, lines)
  for mode in reversed(MODES):
    out += ["", f"## Headline: `{mode}`, float32, largest size", ""]
    lines = [
      [r["source"], r["case"], r["size_label"], _ms(r["implementations"]["jaxloss"].get("median_s"))]
      + [_pct(r["implementations"]["jaxloss"].get("bandwidth_fraction"))]
      + [_ratio(r, p) for p in PEERS]
      for r in headline(rows, mode)
    ]
    out += _table(["source", "case", "size", "jaxloss ms", "%bw", *(f"/{p}" for p in PEERS)], lines)
  out += ["", "## Compile time: `value_and_grad`, float32 (trace + compile)", ""]
  out.append(
    "One measurement per variant (a fresh `jax.jit`, traced and compiled once): the median over the case's sizes of"
    f" jaxloss's time and of its ratio to each compiled peer's; **bold** above {COMPILE_SLOWER:.1f} (the target)."
  )
  out.append("")
  out += _table(["source", "case", "sizes", "jaxloss ms", "/jnp", "/optax"], compile_times(rows))
  out += ["", f"## jaxloss slower than a peer by more than {SLOWER - 1:.0%}", ""]
  found = slower(rows)
  if found:
    out += _table(
      ["source", "variant", "peer", "ratio", "load (1 min)"],
      [[r["source"], f"`{r['id']}`", p, f"{ratio:.2f}", f"{r['load_1m']}"] for r, p, ratio in found],
    )
  else:
    out.append("None.")
  out += ["", "## Plots", ""]
  out += [f"![{name}]({name})" for name in figures]
  out += ["", "## Every result", ""]
  lines = []
  for r in rows:
    ours = r["implementations"]["jaxloss"]
    if ours["status"] != "ok":
      lines.append([r["source"], f"`{r['id']}`", f"{ours['status']}: {ours['reason']}"] + [""] * (5 + len(PEERS)))
      continue
    compile_s = (ours["trace_s"] or 0) + (ours["compile_s"] or 0)
    temp = "—" if ours["temp_bytes"] is None else f"{ours['temp_bytes'] / 2**20:.1f}"
    lines.append(
      [r["source"], f"`{r['id']}`", _ms(ours["median_s"]), f"{_ms(ours['q1_s'])}–{_ms(ours['q3_s'])}"]
      + [_ms(compile_s), temp, f"{ours['gbps']:.2f}", _pct(ours["bandwidth_fraction"])]
      + [_ratio(r, p) for p in PEERS]
    )
  header = ["source", "variant", "ms", "IQR ms", "compile ms", "temp MB", "GB/s", "%bw", *(f"/{p}" for p in PEERS)]
  out += _table(header, lines)
  return "\n".join(out) + "\n"


def _grid(count: int, columns: int = 4):
  import matplotlib.pyplot as plt

  columns = min(columns, max(count, 1))
  nrows = -(-max(count, 1) // columns)
  fig, axes = plt.subplots(nrows, columns, figsize=(4 * columns, 3.2 * nrows + 0.6), squeeze=False)
  # Fixed spacing: tight_layout costs seconds on a dozen log axes.
  fig.subplots_adjust(left=0.07, right=0.98, bottom=0.1, top=1 - 0.6 / (3.2 * nrows + 0.6), hspace=0.55, wspace=0.3)
  for ax in axes.flat[count:]:
    ax.set_visible(False)
  return fig, list(axes.flat)


def _save(fig, out_dir: pathlib.Path, name: str, figures: list[str]) -> None:
  import matplotlib.pyplot as plt

  fig.savefig(out_dir / name, dpi=90)
  plt.close(fig)
  figures.append(name)


def _series(rows: Sequence[Row], key) -> list[tuple[int, float]]:
  points = sorted((r["elements"], key(r)) for r in rows)
  return [(x, y) for x, y in points if y is not None]


def plots(rows: Sequence[Row], out_dir: pathlib.Path) -> list[str]:
  """Write the PNG figures into ``out_dir``; their file names."""
  import matplotlib
  import matplotlib.ticker

  matplotlib.use("Agg")
  figures: list[str] = []
  sources = list(dict.fromkeys(r["source"] for r in rows))
  styles = dict(zip(sources, ["-", "--", ":", "-."] * 4, strict=False))
  colors = dict(zip(IMPLEMENTATIONS, ["C0", "C1", "C2", "C3"], strict=True))
  palette = matplotlib.colormaps["tab20"]
  case_colors = {case: palette(i % 20) for i, case in enumerate(dict.fromkeys(r["case"] for r in rows))}
  by = collections.defaultdict(list)
  for r in rows:
    by[r["family"], r["dtype"], r["mode"]].append(r)
  for (family, dtype, mode), group in sorted(by.items()):
    cases = list(dict.fromkeys(r["case"] for r in group))
    fig, axes = _grid(len(cases))
    for ax, case in zip(axes, cases, strict=False):
      for source in sources:
        selected = [r for r in group if r["case"] == case and r["source"] == source]
        for impl in IMPLEMENTATIONS:
          points = _series(selected, lambda r, i=impl: r["implementations"][i].get("median_s"))
          if points:
            xs, ys = zip(*points, strict=True)
            label = impl if len(sources) == 1 else f"{impl} ({source})"
            ax.loglog(xs, [y * 1e3 for y in ys], styles[source], color=colors[impl], marker=".", label=label)
      ax.set_title(case)
      ax.set_xlabel("elements")
      ax.set_ylabel("ms per call")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{family}: time vs size, {dtype}, {mode}")
    _save(fig, out_dir, f"time-{_slug(family)}-{dtype}-{mode}.png", figures)

  by_family = collections.defaultdict(list)
  for r in rows:
    by_family[r["family"], r["dtype"]].append(r)
  for (family, dtype), group in sorted(by_family.items()):
    for source in sources:
      mine = [r for r in group if r["source"] == source]
      if not mine:
        continue
      cases = list(dict.fromkeys(r["case"] for r in mine))
      fig, axes = _grid(len(MODES) * len(PEERS), columns=len(PEERS))
      for ax, (mode, peer) in zip(axes, [(m, p) for m in MODES for p in PEERS], strict=True):
        for case in cases:
          selected = [r for r in mine if r["case"] == case and r["mode"] == mode]
          points = _series(selected, lambda r, p=peer: r["ratios"][p])
          if points:
            xs, ys = zip(*points, strict=True)
            ax.loglog(xs, ys, marker=".", color=case_colors[case], label=case)
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.axhline(SLOWER, color="red", linewidth=0.8, linestyle="--")
        ax.set_title(f"jaxloss / {peer}, {mode}")
        ax.set_xlabel("elements")
        if ax.get_legend_handles_labels()[0]:
          ax.legend(fontsize=6)
      fig.suptitle(f"{family}: ratio to each peer, {dtype}, {source} (below 1: jaxloss faster)")
      _save(fig, out_dir, f"ratio-{_slug(family)}-{dtype}-{_slug(source)}.png", figures)

    fig, axes = _grid(len(sources) * len(MODES), columns=len(MODES))
    for ax, (source, mode) in zip(axes, [(s, m) for s in sources for m in MODES], strict=True):
      for case in dict.fromkeys(r["case"] for r in group):
        selected = [r for r in group if r["case"] == case and r["mode"] == mode and r["source"] == source]
        points = _series(selected, lambda r: r["implementations"]["jaxloss"].get("bandwidth_fraction"))
        if points:
          xs, ys = zip(*points, strict=True)
          ax.semilogx(xs, ys, marker=".", color=case_colors[case], label=case)
      ax.set_title(f"{source}, {mode}", fontsize=9)
      ax.set_xlabel("elements")
      ax.set_ylabel("fraction of probe bandwidth")
      if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6)
    fig.suptitle(f"{family}: jaxloss's fraction of the measured bandwidth, {dtype}")
    _save(fig, out_dir, f"bandwidth-{_slug(family)}-{dtype}.png", figures)

  if len(sources) > 1:
    import numpy as np

    for family in dict.fromkeys(r["family"] for r in rows):
      fig, axes = _grid(len(MODES), columns=len(MODES))
      for ax, mode in zip(axes, MODES, strict=True):
        chosen = [r for r in headline(rows, mode) if r["family"] == family]
        cases = list(dict.fromkeys(r["case"] for r in chosen))
        width = 0.8 / len(sources)
        for k, source in enumerate(sources):
          times = {r["case"]: r["implementations"]["jaxloss"].get("median_s") for r in chosen if r["source"] == source}
          heights = [(times.get(c) or 0) * 1e3 for c in cases]
          ax.bar(np.arange(len(cases)) + k * width, heights, width, label=source)
        ax.set_xticks(np.arange(len(cases)) + 0.4 - width / 2, cases, rotation=45, ha="right", fontsize=7)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_ylabel("jaxloss ms per call (largest size)")
        ax.set_title(mode)
        ax.legend(fontsize=7)
      fig.suptitle(f"{family}: backends side by side, float32")
      _save(fig, out_dir, f"backends-{_slug(family)}.png", figures)
  return figures


def render(paths: Sequence[str | pathlib.Path], out_dir: str | pathlib.Path) -> tuple[pathlib.Path, list[str]]:
  """Write ``report.md`` and its PNGs into ``out_dir``: the markdown's path and the PNG names."""
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  documents, rows = load(paths)
  figures = plots(rows, out_dir)
  path = out_dir / "report.md"
  path.write_text(markdown(documents, rows, figures))
  return path, figures


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m benchmarks report", description=__doc__.splitlines()[0])
  parser.add_argument("files", nargs="+", metavar="FILE.json", help="result files of `python -m benchmarks --out`")
  parser.add_argument("--out-dir", help="where report.md and the PNGs go (default: report/ beside the first file)")
  args = parser.parse_args(argv)
  out_dir = args.out_dir or pathlib.Path(args.files[0]).parent / "report"
  path, figures = render(args.files, out_dir)
  print(f"wrote {path} and {len(figures)} PNGs beside it")
  return 0
