# %% [markdown]
# # Classification and surrogate losses: logistic, hinge, focal and soft Dice
#
# Accuracy and F1 are what we want a classifier to score, but they are step functions of the model's outputs:
# their gradient is 0 almost everywhere, so nothing can be trained on them directly. We train on a smooth or
# piecewise-linear *surrogate* instead and watch the metrics. This notebook trains the same small network on
# an imbalanced two-dimensional data set (about one positive in ten) with the logistic loss
# (`binary_cross_entropy_with_logits`, also with a positive-class weight), the hinge loss, the sigmoid focal
# loss and the soft Dice loss (`jl.dice`, a differentiable F1), all with optax through `jl.train`. It tracks
# accuracy and F1 while training, and plots the training curves and the decision boundaries.

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import jaxloss as jl

plt.rcParams.update({"figure.dpi": 80})


def make_data(rng, n):
  """Negatives: a broad Gaussian. Positives (10%): two tight blobs, one half inside the negatives' spread."""
  positive = rng.uniform(size=n) < 0.1
  negatives = rng.normal(0.0, 1.2, (n, 2))
  centres = np.where(rng.uniform(size=(n, 1)) < 0.5, [[1.8, 1.2]], [[-1.2, 2.0]])
  positives = centres + rng.normal(0.0, 0.45, (n, 2))
  x = np.where(positive[:, None], positives, negatives).astype(np.float32)
  return jnp.asarray(x), jnp.asarray(positive.astype(np.float32))


rng = np.random.default_rng(0)
x_train, y_train = make_data(rng, 1000)
x_test, y_test = make_data(rng, 4000)
print(f"training set: {int(y_train.sum())} positives out of {len(y_train)}")
print(f"test set: {int(y_test.sum())} positives out of {len(y_test)}")
print(f"predicting 'negative' everywhere scores accuracy {1 - float(y_test.mean()):.3f} on the test set, and F1 0")

fig, ax = plt.subplots(figsize=(5, 4.5))
ax.scatter(*x_train[y_train == 0].T, s=6, c="0.6", label="negative")
ax.scatter(*x_train[y_train == 1].T, s=10, c="tab:red", label="positive")
ax.set(title="training set", aspect="equal")
ax.legend()
plt.show()

# %% [markdown]
# ## The model, the metrics and the surrogates
#
# A two-layer network (16 tanh units) maps a point to one logit `s`; the prediction is positive when `s > 0`.
# Accuracy and F1 = 2TP / (2TP + FP + FN) are computed from that hard decision. The surrogates:
#
# - **logistic**: `binary_cross_entropy_with_logits(s, t)`, targets `t` in {0, 1};
# - **logistic, weighted**: the same with `pos_weight = #negatives / #positives`, so both classes weigh the same;
# - **hinge**: `hinge(s, y)` with labels `y = 2t - 1` in {-1, +1} (the linear SVM loss on a learned feature map);
# - **focal**: `sigmoid_focal(s, t, alpha=0.75, gamma=2)`: the logistic loss scaled down on examples that are
#   already well classified, and positives weighted by `alpha`;
# - **soft Dice**: `dice(sigmoid(s), t)` over the whole batch, one minus a "soft F1" in which the hard
#   decisions are replaced by probabilities (soft true positives `sum p t`, soft false positives, ...).
#
# `jl.train.objective(..., aux=True, metrics=...)` returns the metrics of every step's batch alongside the
# loss, so the training loop records them for free.


# %%
def init(key, hidden=16):
  k1, k2 = jax.random.split(key)
  return {
    "w1": jax.random.normal(k1, (2, hidden)) / np.sqrt(2),
    "b1": jnp.zeros(hidden),
    "w2": jax.random.normal(k2, (hidden,)) / np.sqrt(hidden),
    "b2": jnp.zeros(()),
  }


def network(params, x):
  return jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


def accuracy(scores, targets):
  return jnp.mean((scores > 0) == (targets > 0.5))


def f1(scores, targets):
  predicted, actual = scores > 0, targets > 0.5
  true_positives = jnp.sum(predicted & actual)
  errors = jnp.sum(predicted != actual)
  return 2 * true_positives / jnp.maximum(2 * true_positives + errors, 1)


def hinge(scores, targets, **options):
  return jl.hinge(scores, 2 * targets - 1, **options)


def soft_dice(scores, targets, **options):
  return jl.dice(jax.nn.sigmoid(scores)[None], targets[None], **options)  # one "example": the whole batch


pos_weight = (1 - y_train.mean()) / y_train.mean()
surrogates = {
  "logistic": (jl.binary_cross_entropy_with_logits, {}),
  "logistic, weighted": (lambda s, t, **o: jl.binary_cross_entropy_with_logits(s, t, pos_weight=pos_weight, **o), {}),
  "hinge": (hinge, {}),
  "focal": (jl.sigmoid_focal, {"alpha": 0.75, "gamma": 2.0}),
  "soft Dice": (soft_dice, {}),
}
print(f"pos_weight = {float(pos_weight):.2f}")

# %% [markdown]
# ## Training
#
# Every surrogate trains the same initial network with Adam for 600 full-batch steps. Every 10 steps we record
# the surrogate loss, the training accuracy and F1 (from the step's aux outputs) and the test F1.

# %%
metrics = {"accuracy": accuracy, "f1": f1}
test_metrics = jax.jit(lambda params: (accuracy(network(params, x_test), y_test), f1(network(params, x_test), y_test)))
batch = {"inputs": x_train, "targets": y_train}
initial = init(jax.random.key(0))


def train(loss, options, steps=600, every=10):
  optimizer = optax.adam(0.02)
  objective = jl.train.objective(network, loss, aux=True, metrics=metrics, **options)
  step = jl.train.make_step(objective, optimizer)
  params, state = initial, optimizer.init(initial)
  history = []
  for i in range(steps):
    before = params  # value and aux are computed at the incoming parameters
    params, state, value, aux = step(params, state, batch)
    if i % every == 0:
      history.append((i, float(value), float(aux["accuracy"]), float(aux["f1"]), float(test_metrics(before)[1])))
  return params, np.array(history)


results = {name: train(loss, options) for name, (loss, options) in surrogates.items()}

# %%
fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
for name, (_, history) in results.items():
  steps, loss_value, train_accuracy, train_f1, test_f1 = history.T
  axes[0].plot(steps, loss_value / loss_value[0], label=name)
  axes[1].plot(steps, train_accuracy, label=name)
  axes[2].plot(steps, train_f1, label=name)
  axes[3].plot(steps, test_f1, label=name)
axes[0].set(title="surrogate loss / initial value", yscale="log")
axes[1].set(title="training accuracy", ylim=(0.85, 1.0))
axes[2].set(title="training F1", ylim=(0, 1))
axes[3].set(title="test F1", ylim=(0, 1))
for ax in axes:
  ax.set(xlabel="step")
  ax.grid(alpha=0.3)
axes[3].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# The final scores on the held-out test set. Precision is the fraction of predicted positives that are
# positive, recall the fraction of positives found; F1 is their harmonic mean.

# %%
print(f"{'surrogate':20} {'accuracy':>9} {'precision':>10} {'recall':>7} {'F1':>6}")
for name, (params, _) in results.items():
  predicted = np.asarray(network(params, x_test) > 0)
  actual = np.asarray(y_test > 0.5)
  true_positives = np.sum(predicted & actual)
  precision = true_positives / max(predicted.sum(), 1)
  recall = true_positives / actual.sum()
  test_accuracy, test_f1 = (float(v) for v in test_metrics(params))
  print(f"{name:20} {test_accuracy:9.3f} {precision:10.3f} {recall:7.3f} {test_f1:6.3f}")

# %% [markdown]
# ## Decision boundaries
#
# The black line is the decision boundary `s = 0`; the shading is the predicted probability `sigmoid(s)` (for
# the hinge, `s` is a score rather than a log-odds, so its shading only shows the sign and the margin).

# %%
grid = np.linspace(-4, 4, 161, dtype=np.float32)
points = jnp.asarray(np.stack(np.meshgrid(grid, grid), -1).reshape(-1, 2))
fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 4), sharey=True)
for ax, (name, (params, _)) in zip(axes, results.items(), strict=True):
  surface = np.asarray(network(params, points)).reshape(len(grid), len(grid))
  ax.contourf(grid, grid, jax.nn.sigmoid(surface), levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.6)
  ax.contour(grid, grid, surface, levels=[0.0], colors="k", linewidths=2)
  ax.scatter(*x_test[y_test == 0][:600].T, s=3, c="0.3")
  ax.scatter(*x_test[y_test == 1][:150].T, s=6, c="tab:red")
  ax.set(title=name, aspect="equal")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Why the hard metrics cannot be trained directly
#
# The gradient of the F1 score with respect to the logits is 0 almost everywhere: the hard prediction only
# changes when a logit crosses 0. The soft Dice loss, its smooth counterpart, has a non-zero gradient at
# almost every point (0 only where the sigmoid saturates in float32), largest where the probability is
# uncertain. At the final soft-Dice network, on the training set:

# %%
scores = network(results["soft Dice"][0], x_train)
f1_gradient = jax.grad(f1)(scores, y_train)
dice_gradient = jax.grad(lambda s: soft_dice(s, y_train))(scores)
print(f"non-zero entries of the F1 gradient:        {int(jnp.sum(f1_gradient != 0))} of {len(scores)}")
print(f"non-zero entries of the soft Dice gradient: {int(jnp.sum(dice_gradient != 0))} of {len(scores)}")
print(
  f"soft F1 = 1 - soft Dice = {1 - float(soft_dice(scores, y_train)):.3f}, hard F1 = {float(f1(scores, y_train)):.3f}"
)

# %% [markdown]
# ## What to take away
#
# - Accuracy is the wrong score for an imbalanced problem: predicting "negative" everywhere already reaches
#   about 0.9. Track F1 (or precision and recall) on held-out data, even though you train on something else.
# - The plain logistic loss optimises the average log-likelihood, which the majority class dominates; weighting
#   the positives (`pos_weight`) or the focal loss's `alpha` trades precision for recall and usually raises
#   F1 on the minority class. The focal loss also stops pushing examples that are already well classified.
# - The hinge loss is 0 for every example beyond the margin, so only the points near the boundary shape it;
#   like the unweighted logistic loss it treats both classes alike, and here both find fewer than half of
#   the positives.
# - Soft Dice (`jl.dice` on probabilities) is a differentiable F1: training on it aims at F1 directly, and
#   once the network is confident its soft F1 is close to the hard F1 it stands in for.
# - Whatever the surrogate, the loss curve going down does not guarantee the metric goes up: plot both.
