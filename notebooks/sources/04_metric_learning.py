# %% [markdown]
# # Metric learning: triplet and contrastive losses
#
# A metric-learning loss does not ask a network for a class; it asks for an *embedding* in which points of
# the same class are close and points of different classes are far apart. This notebook trains a small
# embedding network (a two-layer MLP with plain JAX parameters, mapping 16-dimensional inputs to a
# 2-dimensional embedding we can plot) on synthetic clusters, once with `jl.triplet_margin` and once with
# `jl.contrastive`, using optax and `jl.train.make_step`. It plots the embeddings of held-out points before
# and after training, and measures how well the classes separate (nearest-neighbour accuracy and the ratio of
# distances within and between classes).

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import jaxloss as jl

plt.rcParams.update({"figure.dpi": 80})

classes, per_class, features = 6, 60, 16
rng = np.random.default_rng(0)
centres = rng.normal(0.0, 1.0, (classes, features))
centres[:, 8:] = 0.0  # the classes differ in the first 8 features only ...
scale = np.r_[np.full(8, 0.45), np.full(8, 2.0)]  # ... and the other 8 carry large, useless noise


def make_data(n_per_class):
  labels = np.repeat(np.arange(classes), n_per_class)  # sorted by class: class c is rows c*n .. (c+1)*n - 1
  x = centres[labels] + rng.normal(size=(len(labels), features)) * scale
  return jnp.asarray(x, jnp.float32), labels


x_train, labels_train = make_data(per_class)
x_test, labels_test = make_data(per_class)
print(f"{classes} classes, {per_class} training and {per_class} test points each, {features} features")

# %% [markdown]
# ## The embedding network and two ways to judge an embedding
#
# `embed(params, x)` is `tanh(x W1 + b1) W2 + b2`, 16 → 32 → 2. On held-out points we measure the
# leave-one-out 1-nearest-neighbour accuracy (the class of each point's nearest other point) and the ratio of
# the mean distance between points of the same class to the mean distance between points of different classes
# (lower is better; about 1 for an embedding that ignores the classes).


# %%
def init(key, hidden=32, out=2):
  k1, k2 = jax.random.split(key)
  return {
    "w1": jax.random.normal(k1, (features, hidden)) / np.sqrt(features),
    "b1": jnp.zeros(hidden),
    "w2": jax.random.normal(k2, (hidden, out)) / np.sqrt(hidden),
    "b2": jnp.zeros(out),
  }


def embed(params, x):
  return jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


def evaluate(params, x=x_test, labels=labels_test):
  z = np.asarray(embed(params, x))
  distance = np.linalg.norm(z[:, None] - z[None], axis=-1)
  same = labels[:, None] == labels[None]
  np.fill_diagonal(distance, np.inf)
  nearest_neighbour = np.mean(labels[np.argmin(distance, axis=1)] == labels)
  off_diagonal = ~np.eye(len(labels), dtype=bool)
  ratio = distance[same & off_diagonal].mean() / distance[~same].mean()
  return nearest_neighbour, ratio


initial = init(jax.random.key(0))
nearest_neighbour, ratio = evaluate(initial)
print(f"before training: 1-NN accuracy {nearest_neighbour:.3f}, within / between distance ratio {ratio:.3f}")

# %% [markdown]
# ## The losses
#
# - **Triplet margin** (`jl.triplet_margin(anchor, positive, negative, margin=1)`): for an anchor, a positive
#   of its class and a negative of another class, `max(0, d(a, p) - d(a, n) + margin)`. It is 0 once the
#   negative is farther than the positive by the margin, so it only cares about relative distances.
# - **Contrastive** (`jl.contrastive(x1, x2, labels, margin=1)`): for a pair, `d²` if it is similar
#   (label 1) and `max(0, margin - d)²` if not (label 0). It pulls similar pairs to the same point and pushes
#   dissimilar pairs to at least the margin apart: absolute distances.
#
# Each training step draws a fresh batch of 128 random triplets (or pairs, half of them similar) from the
# training set. The objectives are plain functions of `(params, batch)`; `jl.train.make_step` turns each into
# a jitted Adam step.

# %%
batch_size, steps = 128, 400


def sample_triplets(rng):
  anchor = rng.integers(0, len(labels_train), batch_size)
  cls = labels_train[anchor]
  positive = cls * per_class + rng.integers(0, per_class, batch_size)
  other = (cls + rng.integers(1, classes, batch_size)) % classes  # any class but the anchor's
  negative = other * per_class + rng.integers(0, per_class, batch_size)
  return {"anchor": x_train[anchor], "positive": x_train[positive], "negative": x_train[negative]}


def sample_pairs(rng):
  first = rng.integers(0, len(labels_train), batch_size)
  cls = labels_train[first]
  similar = rng.uniform(size=batch_size) < 0.5
  other = np.where(similar, cls, (cls + rng.integers(1, classes, batch_size)) % classes)
  second = other * per_class + rng.integers(0, per_class, batch_size)
  return {"x1": x_train[first], "x2": x_train[second], "labels": jnp.asarray(similar, jnp.float32)}


def triplet_objective(params, batch):
  a, p, n = (embed(params, batch[k]) for k in ("anchor", "positive", "negative"))
  return jl.triplet_margin(a, p, n, margin=1.0)


def contrastive_objective(params, batch):
  return jl.contrastive(embed(params, batch["x1"]), embed(params, batch["x2"]), batch["labels"], margin=1.0)


def train(objective, sample, seed):
  optimizer = optax.adam(0.01)
  step = jl.train.make_step(objective, optimizer)
  params, state = initial, optimizer.init(initial)
  batches = np.random.default_rng(seed)
  curve = []
  for _ in range(steps):
    params, state, value = step(params, state, sample(batches))
    curve.append(float(value))
  return params, np.array(curve)


trained = {
  "triplet_margin": train(triplet_objective, sample_triplets, seed=1),
  "contrastive": train(contrastive_objective, sample_pairs, seed=2),
}
for name, (params, _) in trained.items():
  nearest_neighbour, ratio = evaluate(params)
  print(f"after {name:15}: 1-NN accuracy {nearest_neighbour:.3f}, within / between distance ratio {ratio:.3f}")

# %% [markdown]
# ## Embeddings of the held-out points, before and after

# %%
fig, axes = plt.subplots(1, 4, figsize=(18, 4.2))
panels = {"before training (random init)": initial, **{f"after {k}": v[0] for k, v in trained.items()}}
for ax, (title, params) in zip(axes, panels.items(), strict=False):  # the last panel holds the curves
  z = np.asarray(embed(params, x_test))
  for c in range(classes):
    ax.scatter(*z[labels_test == c].T, s=8, label=f"class {c}")
  ax.set(title=title, aspect="equal")
axes[0].legend(fontsize=7, markerscale=2)
for name, (_, curve) in trained.items():
  smooth = np.convolve(curve, np.ones(10) / 10, mode="valid")  # each step sees a different random batch
  axes[3].plot(smooth, label=name)
axes[3].set(title="training loss (10-step moving average)", xlabel="step", yscale="log")
axes[3].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# The triplet loss leaves the scale free: clusters only need to be a margin farther from each other than
# their own spread, and the embedding grows to several margins across. The contrastive loss pulls each class
# towards a point and keeps different classes about a margin apart, so it fixes the scale. Where a triplet is
# already satisfied its gradient is exactly 0 (jaxloss gives the hinge's kink the subgradient 0 as well), so
# as training goes on fewer and fewer random triplets contribute:

# %%
params = trained["triplet_margin"][0]
batch = sample_triplets(np.random.default_rng(3))
per_triplet = jl.triplet_margin(
  *(embed(params, batch[k]) for k in ("anchor", "positive", "negative")), margin=1.0, reduction="none"
)
print(f"triplets in a fresh batch with a non-zero loss (and gradient): {int(jnp.sum(per_triplet > 0))} of {batch_size}")

# %% [markdown]
# ## What to take away
#
# - Metric-learning losses train an embedding, not a classifier: the triplet loss constrains relative distances
#   (positive closer than negative by a margin), the contrastive loss absolute ones (similar pairs together,
#   dissimilar pairs at least a margin apart). Both turn an embedding that ignores the classes into one where
#   nearest neighbours share a class.
# - They plug into the same optax training step as any other loss: write `objective(params, batch)` with the
#   loss and pass it to `jl.train.make_step`.
# - With random triplets most of them become easy (zero loss, zero gradient) as training progresses; real
#   systems mine hard triplets or use a batch-wise loss such as `jl.ntxent` for that reason.
