# %% [markdown]
# # Surrogates and calibration on real data: F1, ROC-AUC and the reliability of predicted probabilities
#
# This notebook trains small networks on scikit-learn's bundled digits (1797 handwritten 8x8 images, no
# download) with optax through `jl.train`, and scores them with the exact metrics of `jaxloss.metrics`, which
# are step functions (no useful gradient) and are therefore only *reported*, never trained on. It shows two
# things:
#
# 1. **Metric surrogates.** On an imbalanced binary task (is the digit a 9? one image in ten), the same network
#    is trained with the logistic loss (cross-entropy), with `soft_fbeta` (one minus a soft F1 built from
#    probabilities) and with `auc_surrogate` (a pairwise squared hinge over positive/negative pairs, a
#    stand-in for 1 - ROC-AUC). Does the metric that each surrogate targets improve on a held-out split?
# 2. **Calibration.** On the ten-class task, a network trained long with cross-entropy becomes over-confident.
#    We draw reliability diagrams and the expected calibration error (ECE) for cross-entropy, the focal loss,
#    the confidence penalty, cross-entropy + MMCE (a differentiable calibration error), and for post-hoc
#    *temperature scaling*: one scalar fitted on a validation split with `optax.lbfgs`.

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from sklearn.datasets import load_digits

import jaxloss as jl
from jaxloss import metrics

plt.rcParams.update({"figure.dpi": 80})
digits = load_digits()
x_all = (digits.data / 16).astype(np.float32)
order = np.random.default_rng(0).permutation(len(x_all))
train, valid, test = order[:900], order[900:1200], order[1200:]
x_train, x_valid, x_test = (jnp.asarray(x_all[i]) for i in (train, valid, test))
print(f"train {len(train)}, validation {len(valid)}, test {len(test)} images")


def init_mlp(sizes, seed):
  keys = jax.random.split(jax.random.key(seed), len(sizes) - 1)
  return [
    {"w": jax.random.normal(k, (m, n)) * jnp.sqrt(2 / m), "b": jnp.zeros(n)}
    for k, m, n in zip(keys, sizes[:-1], sizes[1:], strict=True)
  ]


def mlp(params, x):
  for layer in params[:-1]:
    x = jax.nn.relu(x @ layer["w"] + layer["b"])
  return x @ params[-1]["w"] + params[-1]["b"]


def adam_step(loss, **options):
  """One compiled training step (full-batch Adam) for `loss`, reused for every seed."""
  return jl.train.make_step(jl.train.objective(mlp, loss, **options), optax.adam(1e-2))


def fit(step, batch, sizes, steps, seed=0):
  """The parameters after `steps` steps from the initialisation `seed`."""
  params = init_mlp(sizes, seed)
  opt_state = step.init(params)
  for _ in range(steps):
    params, opt_state, _ = step(params, opt_state, batch)
  return params


# %% [markdown]
# ## 1. Training on a surrogate of F1 or of ROC-AUC
#
# The network is 64 -> 16 ReLU -> 1 logit `s`; "a nine" is predicted when `s > 0`. The three losses, on the
# whole training batch:
#
# - **cross-entropy**: `binary_cross_entropy_with_logits(s, t)`, targets `t` in {0, 1};
# - **soft F1**: `soft_fbeta(sigmoid(s), t)`: `1 - 2 sum(p t) / (2 sum(p t) + sum(p (1 - t)) + sum((1 - p) t))`,
#   F1 with the hard decisions replaced by probabilities;
# - **AUC surrogate**: `auc_surrogate(s, t)`: the mean over (positive, negative) pairs of
#   `max(0, 1 - (s_pos - s_neg))^2`. It only sees score *differences*, so it says nothing about where the
#   threshold should be: for its F1 we also report the best threshold chosen on the validation split.
#
# Each is trained from three initialisations (seeds) for 300 Adam steps; the tables give the mean and the spread
# of the test metrics, computed with `metrics.fbeta` and `metrics.roc_auc` (ties in the scores count 1/2,
# as in scikit-learn).

# %%
is_nine = (digits.target == 9).astype(np.float32)
t_train, t_valid, t_test = (jnp.asarray(is_nine[i]) for i in (train, valid, test))
print(f"nines: {int(t_train.sum())} of {len(train)} (train), {int(t_test.sum())} of {len(test)} (test)")


def soft_f1(scores, targets, **options):
  return jl.soft_fbeta(jax.nn.sigmoid(scores), targets, **options)


surrogates = {  # the model's outputs are [N, 1]: one logit per image
  "cross-entropy": lambda s, t: jl.binary_cross_entropy_with_logits(s[:, 0], t),
  "soft F1": lambda s, t: soft_f1(s[:, 0], t),
  "AUC surrogate": lambda s, t: jl.auc_surrogate(s[:, 0], t),
}
scorer = jax.jit(lambda params, x: mlp(params, x)[..., 0])


@jax.jit
def best_threshold(scores, targets):
  candidates = jnp.quantile(scores, jnp.linspace(0.5, 0.99, 50))
  f1 = jax.vmap(lambda c: metrics.fbeta(scores > c, targets > 0))(candidates)
  return candidates[jnp.argmax(f1)]


binary = {}
with jax.numpy_dtype_promotion("standard"):  # optax uses standard promotion
  for name, loss in surrogates.items():
    rows, step = [], adam_step(loss)
    for seed in range(3):
      params = fit(step, {"inputs": x_train, "targets": t_train}, (64, 16, 1), 300, seed)
      s_valid, s_test = scorer(params, x_valid), scorer(params, x_test)
      threshold = best_threshold(s_valid, t_valid)
      rows.append(
        (
          float(metrics.fbeta(s_test > 0, t_test > 0)),
          float(metrics.fbeta(s_test > threshold, t_test > 0)),
          float(metrics.roc_auc(s_test, t_test)),
          float(metrics.average_precision(s_test, t_test)),
        )
      )
      binary[name] = np.array(rows)

print(f"{'loss':15} {'F1 (s > 0)':>16} {'F1 (val. thr.)':>16} {'ROC-AUC':>16} {'avg. precision':>16}")
for name, rows in binary.items():
  cells = " ".join(f"{m:9.3f} ± {sd:.3f}" for m, sd in zip(rows.mean(0), rows.std(0), strict=True))
  print(f"{name:15} {cells}")

for name, column, metric in (("soft F1", 0, "F1 at s > 0"), ("AUC surrogate", 2, "ROC-AUC")):
  ours, ce = binary[name][:, column], binary["cross-entropy"][:, column]
  print(
    f"{name} - cross-entropy, test {metric}: {ours.mean() - ce.mean():+.3f} (seed std {ours.std():.3f}, {ce.std():.3f})"
  )

# %% [markdown]
# How to read it, honestly: the soft F1 gains about a point of F1 over the cross-entropy *at the default
# threshold* `s > 0`, more than the seed-to-seed spread. But that gain is mostly a better-placed threshold: once
# the threshold is chosen on the validation split, the cross-entropy model is as good (and the soft-F1 model,
# whose probabilities are pushed towards 0 and 1, has a noisier best threshold). The AUC surrogate does not
# improve ROC-AUC beyond the spread between seeds: on this data the cross-entropy already ranks almost
# perfectly (ROC-AUC 0.99), so there is little for a ranking surrogate to win. Its F1 at `s > 0` is poor by
# construction (pairwise gaps fix no threshold); with a validation threshold it matches the others.

# %% [markdown]
# ## 2. Calibration on ten classes
#
# The network is 64 -> 128 ReLU -> 10, trained on the first 200 training images only (about 20 per digit)
# with full-batch Adam for 500 steps: long after every training image is right, the cross-entropy keeps
# pushing the training confidences towards 1. A model is *calibrated* when, among the images it labels with
# confidence 0.8, 80% are right. The reliability diagram bins the test images by confidence (the largest
# softmax probability) and plots each bin's accuracy against its mean confidence; the ECE is the count-weighted
# mean gap (`metrics.expected_calibration_error`, 10 equal-width bins; also given with equal-mass bins, whose
# edges are
# the confidences' quantiles, and the maximum gap `metrics.max_calibration_error`). The losses:
#
# - **cross-entropy** `cross_entropy(z, y)`;
# - **focal** `softmax_focal(z, y, gamma=3)`: down-weights the examples already classified with confidence
#   (Mukhoti et al. 2020 found it calibrates better);
# - **confidence penalty** `confidence_penalty(z, y, beta=0.1)`: cross-entropy minus `beta` times the entropy
#   of the prediction (Pereyra et al. 2017);
# - **cross-entropy + MMCE** `cross_entropy(z, y) + 2 mmce(z, y)`: MMCE is a kernel measure of the gap between
#   confidence and correctness over the batch, differentiable (Kumar et al. 2018);
# - **temperature scaling**: the cross-entropy model with its logits divided by one temperature `T`, fitted
#   after training on the validation split (Guo et al. 2017). It does not change any prediction (the argmax is
#   the same), only the confidences.

# %%
y_train, y_valid, y_test = (jnp.asarray(digits.target[i]) for i in (train, valid, test))
x_small, y_small = x_train[:200], y_train[:200]


def ce_plus_mmce(logits, labels):
  return jl.cross_entropy(logits, labels) + 2.0 * jl.mmce(logits, labels)


calibration_losses = {
  "cross-entropy": (jl.cross_entropy, {}),
  "focal (gamma=3)": (jl.softmax_focal, {"gamma": 3.0}),
  "confidence penalty": (jl.confidence_penalty, {"beta": 0.1}),
  "cross-entropy + MMCE": (ce_plus_mmce, {}),
}
logits_of = jax.jit(mlp)
test_logits, valid_logits = {}, {}
with jax.numpy_dtype_promotion("standard"):
  for name, (loss, options) in calibration_losses.items():
    params = fit(adam_step(loss, **options), {"inputs": x_small, "targets": y_small}, (64, 128, 10), 500)
    test_logits[name], valid_logits[name] = logits_of(params, x_test), logits_of(params, x_valid)
    train_accuracy = float(metrics.accuracy(logits_of(params, x_small), y_small))
    print(f"{name:22} training accuracy {train_accuracy:.3f}")

# %% [markdown]
# ### Temperature scaling with `optax.lbfgs`
#
# One parameter, `log T` (so that `T > 0`), the mean negative log-likelihood of the validation labels under
# `softmax(z / T)`, twenty L-BFGS steps with optax's zoom line search (`jl.train.make_step` passes it the value
# and the gradient it needs; `full_batch=True` reuses them at the accepted point).

# %%
nll = jl.train.objective(lambda log_t, z: z / jnp.exp(log_t), jl.cross_entropy)
step = jl.train.make_step(nll, optax.lbfgs(), full_batch=True)
log_t = jnp.zeros(())
lbfgs_state = step.init(log_t)
validation = {"inputs": valid_logits["cross-entropy"], "targets": y_valid}
with jax.numpy_dtype_promotion("standard"):
  for _ in range(20):
    log_t, lbfgs_state, value = step(log_t, lbfgs_state, validation)
temperature = float(jnp.exp(log_t))
before = float(nll(jnp.zeros(()), validation))
print(f"fitted temperature T = {temperature:.3f}; validation NLL {before:.3f} at T = 1, {float(value):.3f} at T")
test_logits["cross-entropy, T-scaled"] = test_logits["cross-entropy"] / temperature

# %%
print(f"{'loss':26} {'accuracy':>9} {'NLL':>7} {'ECE':>7} {'ECE (eq. mass)':>15} {'MCE':>7}")
for name, z in test_logits.items():
  p = jax.nn.softmax(z)
  print(
    f"{name:26} {float(metrics.accuracy(z, y_test)):9.3f} {float(jl.cross_entropy(z, y_test)):7.3f}"
    f" {float(metrics.expected_calibration_error(p, y_test, bins=10)):7.3f}"
    f" {float(metrics.expected_calibration_error(p, y_test, bins=10, binning='equal_mass')):15.3f}"
    f" {float(metrics.max_calibration_error(p, y_test, bins=10)):7.3f}"
  )

# %% [markdown]
# The reliability diagrams: blue bars are each bin's accuracy, the shaded bars the gap up (or down) to the bin's
# mean confidence; a calibrated model's bars follow the diagonal. The inset shows the share of test images in
# each bin: most are in the top bin, which dominates the ECE.

# %%
fig, axes = plt.subplots(1, len(test_logits), figsize=(3.3 * len(test_logits), 3.6), sharey=True)
for ax, (name, z) in zip(axes, test_logits.items(), strict=True):
  p = jax.nn.softmax(z)
  curve = metrics.reliability_curve(p, y_test, bins=10)
  edges, count = np.asarray(curve.edges), np.asarray(curve.count)
  accuracy = np.nan_to_num(np.asarray(curve.accuracy))
  confidence = np.asarray(curve.confidence)
  ax.bar(edges[:-1], accuracy, width=np.diff(edges), align="edge", color="tab:blue", edgecolor="k", label="accuracy")
  occupied = count > 0
  ax.bar(
    edges[:-1][occupied],
    (confidence - accuracy)[occupied],
    bottom=accuracy[occupied],
    width=np.diff(edges)[occupied],
    align="edge",
    color="tab:red",
    alpha=0.35,
    label="gap to confidence",
  )
  ax.plot([0, 1], [0, 1], "k--", lw=1)
  ece = float(metrics.expected_calibration_error(p, y_test, bins=10))
  ax.set(title=f"{name}\nECE {ece:.3f}", xlabel="confidence", xlim=(0, 1), ylim=(0, 1))
  inset = ax.inset_axes([0.08, 0.62, 0.35, 0.3])
  inset.bar(edges[:-1], count / count.sum(), width=np.diff(edges), align="edge", color="0.5")
  inset.set(xticks=[], yticks=[], title="share per bin", xlim=(0, 1))
  inset.title.set_fontsize(7)
axes[0].set(ylabel="accuracy")
axes[-1].legend(fontsize=7, loc="lower right")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## What to take away
#
# - The exact metrics (`metrics.fbeta`, `metrics.roc_auc`, `metrics.average_precision`,
#   `metrics.expected_calibration_error`, ...) are what to report; they have no useful gradient, so a surrogate
#   is trained in their place, and the metric is measured on held-out data.
# - A surrogate of the metric is not automatically better at the metric. Here the soft F1 mostly moved the
#   decision threshold (which a validation split can do for any model), and the AUC surrogate did not beat the
#   cross-entropy's ranking. Compare against cross-entropy with a tuned threshold and several seeds before
#   concluding.
# - A network trained to fit its training set with cross-entropy is over-confident: the test images are right
#   less often than their confidence says. Temperature scaling, one scalar fitted by L-BFGS on a validation
#   split, leaves every prediction unchanged and halved the ECE here; the losses that calibrate during training
#   (focal, confidence penalty, MMCE) reduced it less, and change the model itself (their test accuracies
#   differ by up to eight of the 597 images, one seed each: not evidence either way).
# - ECE depends on the binning: give the number of bins and whether they are equal-width or equal-mass, and
#   look at the reliability diagram with the share of examples per bin, not at the number alone.
