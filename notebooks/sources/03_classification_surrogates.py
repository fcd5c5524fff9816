# %% [markdown]
# # Classification and surrogate losses: logistic, hinge, focal and soft Dice with a Flax NNX model
#
# Accuracy and F1 are what we want a classifier to score, but they are step functions of the model's outputs:
# their gradient is 0 almost everywhere, so nothing can be trained on them directly. We train on a smooth or
# piecewise-linear *surrogate* instead and watch the metrics. The task is imbalanced by nature: in
# scikit-learn's bundled digits (1797 handwritten 8x8 images, no download), tell the eights from every other
# digit; about one image in ten is an eight. The same Flax NNX network with dropout is trained with the logistic
# loss (`binary_cross_entropy_with_logits`, also with a positive-class weight), the hinge loss, the sigmoid focal
# loss and the soft Dice loss (`jl.dice`, a differentiable F1), all with optax through `jl.train`. The notebook
# tracks accuracy and F1 while training and looks at the scores and the mistakes.

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from flax import nnx
from sklearn.datasets import load_digits

import jaxloss as jl

plt.rcParams.update({"figure.dpi": 80})
digits = load_digits()
x = (digits.data / 16).astype(np.float32)
is_eight = (digits.target == 8).astype(np.float32)
order = np.random.default_rng(0).permutation(len(x))
train, test = order[:1000], order[1000:]
x_train, y_train = jnp.asarray(x[train]), jnp.asarray(is_eight[train])
x_test, y_test = jnp.asarray(x[test]), jnp.asarray(is_eight[test])
print(f"training set: {int(y_train.sum())} eights out of {len(y_train)}")
print(f"test set: {int(y_test.sum())} eights out of {len(y_test)}")
print(f"answering 'not an eight' everywhere scores accuracy {1 - float(y_test.mean()):.3f} on the test set, and F1 0")

fig, axes = plt.subplots(1, 10, figsize=(10, 1.3))
for ax, image, label in zip(axes, x[train][:10], is_eight[train][:10], strict=True):
  ax.imshow(image.reshape(8, 8), cmap="gray_r")
  ax.set(xticks=[], yticks=[], title="eight" if label else "other")
plt.show()

# %% [markdown]
# ## The model, the metrics and the surrogates
#
# An NNX module (64 inputs, 32 ReLU units, dropout 0.3, one logit `s`); the prediction is "eight" when `s > 0`.
# Accuracy and F1 = 2TP / (2TP + FP + FN) are computed from that hard decision. The surrogates:
#
# - **logistic**: `binary_cross_entropy_with_logits(s, t)`, targets `t` in {0, 1};
# - **logistic, weighted**: the same with `pos_weight = #negatives / #positives`, so both classes weigh the same.
#   `pos_weight` travels in the batch: a batch key that the loss takes goes to the loss;
# - **hinge**: `hinge(s, y)` with labels `y = 2t - 1` in {-1, +1} (the linear SVM loss on a learned feature map);
# - **focal**: `sigmoid_focal(s, t, alpha=0.75, gamma=2)`: the logistic loss scaled down on examples that are
#   already well classified, and positives weighted by `alpha`;
# - **soft Dice**: `dice(sigmoid(s), t)` over the whole batch, one minus a "soft F1" in which the hard
#   decisions are replaced by probabilities (soft true positives `sum p t`, soft false positives, ...).
#
# `jl.train.objective(None, loss)` calls the module itself (`model(inputs)`); `make_step` splits it into its
# `nnx.Param` variables (trained) and the rest of its state (the dropout rng counter), merges them inside the
# differentiated step and writes the new state back into the module, so every step draws a new dropout mask.
# With `aux=True, metrics=...` each step also returns the metrics on its batch (computed with dropout on).


# %%
class Net(nnx.Module):
  def __init__(self, rngs: nnx.Rngs):
    self.hidden = nnx.Linear(64, 32, rngs=rngs)
    self.dropout = nnx.Dropout(0.3, rngs=rngs)
    self.out = nnx.Linear(32, 1, rngs=rngs)

  def __call__(self, x):
    return self.out(self.dropout(jax.nn.relu(self.hidden(x))))[..., 0]


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
surrogates = {  # loss, its options, extra batch entries
  "logistic": (jl.binary_cross_entropy_with_logits, {}, {}),
  "logistic, weighted": (jl.binary_cross_entropy_with_logits, {}, {"pos_weight": pos_weight}),
  "hinge": (hinge, {}, {}),
  "focal": (jl.sigmoid_focal, {"alpha": 0.75, "gamma": 2.0}, {}),
  "soft Dice": (soft_dice, {}, {}),
}
print(f"pos_weight = {float(pos_weight):.2f}")

# %% [markdown]
# ## Training
#
# Every surrogate trains the same initial network with Adam for 300 full-batch steps. Every 10 steps we record
# the surrogate loss, the training accuracy and F1 from the step's aux outputs, and the test F1 of a copy of
# the model in evaluation mode (`model.eval()` switches dropout off).

# %%
metrics = {"accuracy": accuracy, "f1": f1}
scores_of = nnx.jit(lambda model, x: model(x))


def evaluate(model, x):
  copy = nnx.clone(model)
  copy.eval()
  return scores_of(copy, x)


def train(loss, options, extra, steps=300, every=10):
  step = jl.train.make_step(jl.train.objective(None, loss, aux=True, metrics=metrics, **options), optax.adam(1e-2))
  model = Net(nnx.Rngs(0))
  opt_state = step.init(model)
  batch = {"inputs": x_train, "targets": y_train, **extra}
  history = []
  for i in range(steps):
    if i % every == 0:
      test_f1 = float(f1(evaluate(model, x_test), y_test))  # at the incoming parameters, as value and aux
    model, opt_state, value, aux = step(model, opt_state, batch)
    if i % every == 0:
      history.append((i, float(value), float(aux["accuracy"]), float(aux["f1"]), test_f1))
  return model, np.array(history)


with jax.numpy_dtype_promotion("standard"):  # Flax and optax use standard promotion
  results = {name: train(*surrogate) for name, surrogate in surrogates.items()}

# %%
fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
for name, (_, history) in results.items():
  steps, loss_value, train_accuracy, train_f1, test_f1 = history.T
  axes[0].plot(steps, loss_value / loss_value[0], label=name)
  axes[1].plot(steps, train_accuracy, label=name)
  axes[2].plot(steps, train_f1, label=name)
  axes[3].plot(steps, test_f1, label=name)
axes[0].set(title="surrogate loss / initial value", yscale="log")
axes[1].set(title="training accuracy (dropout on)", ylim=(0.85, 1.0))
axes[2].set(title="training F1 (dropout on)", ylim=(0, 1))
axes[3].set(title="test F1", ylim=(0, 1))
for ax in axes:
  ax.set(xlabel="step")
  ax.grid(alpha=0.3)
axes[3].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# The final scores on the held-out test set. Precision is the fraction of predicted eights that are eights,
# recall the fraction of eights found; F1 is their harmonic mean.

# %%
print(f"{'surrogate':20} {'accuracy':>9} {'precision':>10} {'recall':>7} {'F1':>6}")
final_scores = {}
for name, (model, _) in results.items():
  scores = evaluate(model, x_test)
  final_scores[name] = np.asarray(scores)
  predicted, actual = np.asarray(scores > 0), np.asarray(y_test > 0.5)
  true_positives = np.sum(predicted & actual)
  precision = true_positives / max(predicted.sum(), 1)
  recall = true_positives / actual.sum()
  print(
    f"{name:20} {float(accuracy(scores, y_test)):9.3f} {precision:10.3f} {recall:7.3f} {float(f1(scores, y_test)):6.3f}"
  )

# %% [markdown]
# ## Scores and mistakes
#
# The distribution of the test logits, eights against the other digits, for each surrogate (each histogram is
# normalised; the decision threshold is 0). The unweighted logistic and hinge losses leave many eights close to
# the threshold: the minority class pulls less on the shared network. Weighting the positives, the focal
# loss's `alpha` and soft Dice push the eights further past it. Below, the test images that the focal-loss
# model gets wrong, each with its digit and its logit.

# %%
fig, axes = plt.subplots(1, len(final_scores), figsize=(4 * len(final_scores), 3), sharey=True)
actual = np.asarray(y_test > 0.5)
for ax, (name, scores) in zip(axes, final_scores.items(), strict=True):
  bins = np.linspace(np.percentile(scores, 1), np.percentile(scores, 99), 30)
  ax.hist(scores[~actual], bins=bins, color="0.6", density=True, label="other digits")
  ax.hist(scores[actual], bins=bins, color="tab:red", alpha=0.7, density=True, label="eights")
  ax.axvline(0, color="k", lw=1)
  ax.set(title=name, xlabel="logit")
axes[0].legend(fontsize=8)
plt.tight_layout()
plt.show()

wrong = np.flatnonzero((final_scores["focal"] > 0) != actual)
fig, axes = plt.subplots(1, max(len(wrong[:12]), 1), figsize=(1.1 * max(len(wrong[:12]), 1), 1.6), squeeze=False)
for ax, index in zip(axes[0], wrong[:12], strict=False):
  ax.imshow(x[test][index].reshape(8, 8), cmap="gray_r")
  ax.set(xticks=[], yticks=[])
  ax.set_title(f"{digits.target[test][index]}: {final_scores['focal'][index]:+.1f}", fontsize=8)
plt.show()

# %% [markdown]
# ## Why the hard metrics cannot be trained directly
#
# The gradient of the F1 score with respect to the logits is 0 almost everywhere: the hard prediction only
# changes when a logit crosses 0. The soft Dice loss, its smooth counterpart, has a non-zero gradient at
# almost every point (0 only where the sigmoid saturates in float32), largest where the probability is
# uncertain. At the final soft-Dice network, on the training set:

# %%
scores = evaluate(results["soft Dice"][0], x_train)
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
# - Accuracy is the wrong score for an imbalanced problem: answering "not an eight" everywhere already reaches
#   about 0.9. Track F1 (or precision and recall) on held-out data, even though you train on something else.
# - The plain logistic loss optimises the average log-likelihood, which the majority class dominates; weighting
#   the positives (`pos_weight`) or the focal loss's `alpha` trades precision for recall on the minority class.
#   The focal loss also stops pushing examples that are already well classified.
# - The hinge loss is 0 for every example beyond the margin, so only the points near the boundary shape it.
# - Soft Dice (`jl.dice` on probabilities) is a differentiable F1: training on it aims at F1 directly, and
#   once the network is confident its soft F1 is close to the hard F1 it stands in for.
# - A Flax NNX module with dropout goes through `jl.train.make_step` as it is: its parameters are trained, its
#   rng state advances at every step (a new dropout mask each time) and is written back into the module.
# - Whatever the surrogate, the loss curve going down does not guarantee the metric goes up: plot both.
