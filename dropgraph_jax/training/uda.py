"""UDA: Unsupervised Data Augmentation (Xie et al. 2019, arXiv:1904.12848),
with an AutoDropout pattern in the student (AutoDropout Table 3).

Per step, a labelled batch ``(x, y)`` of ``B`` images and ``r B`` unlabelled
images ``u`` with their RandAugment views ``RA(u)``
(:mod:`dropgraph_jax.data.semi_supervised`):

1. ``L = L_sup + lambda * L_unsup``                     (``uda_coefficient``)
2. ``L_sup = sum_i m_i CE(f(x_i), y_i) / max(sum_i m_i, 1)`` with the
   training-signal-annealing mask ``m_i = 1[p(y_i | x_i) <= eta_t]``
   (``uda_tsa``; no TSA: ``m_i = 1`` and a plain mean);
3. ``eta_t = a_t (1 - 1/K) + 1/K`` with ``a_t = t/T`` (linear),
   ``1 - exp(-5 t/T)`` (log) or ``exp(5 (t/T - 1))`` (exp);
4. ``L_unsup = mean_j c_j KL(sg(softmax(g(u_j) / tau)) || softmax(f(RA(u_j))))``
   (``uda_temperature`` tau sharpens the target);
5. ``c_j = 1[max softmax(g(u_j)) > beta]``               (``uda_confidence``).

As in the reference (google-research/uda ``image/main.py``): the unlabelled
loss is averaged over all ``r B`` images, masked or not; the supervised
one over the unmasked; the targets get no gradient.

Choices the papers leave open, ours:

* Where the pattern goes. ``f`` is the *student* pass, on the labelled and
  augmented images together (one batch, so batch norm sees both, as in the
  reference's single pass), with the AutoDropout pattern (or any
  regularizer) on. ``g`` is the *teacher* pass on the original unlabelled
  images: the same network built without a policy, reading the student's
  weights at the same paths (a regularizer's own weights, DropGraph's
  graph, are not read), batch norm on the batch's statistics; its
  statistic updates are dropped. (The models' ``rate_factor`` cannot
  switch a pattern off: it scales the library regularizers' rates only.)
  The reference runs one pass over all three batches; with no regularizer
  the two designs differ only in batch norm's grouping.
* An epoch is one pass over the labelled images (the configs give steps).
"""

from __future__ import annotations

import functools
import time
from typing import Any, Callable, Dict

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import traverse_util

from dropgraph_jax.data import images as image_data
from dropgraph_jax.data import semi_supervised
from dropgraph_jax.training import classifier, common, supervised
from dropgraph_jax.training.supervised import TrainState


def tsa_threshold(schedule: str, step, total: int, num_classes: int):
  """Eq. 3: the probability above which a labelled example is masked."""
  ratio = jnp.asarray(step, jnp.float32) / max(total, 1)
  alpha = {"linear": lambda: ratio,
           "log": lambda: 1.0 - jnp.exp(-5.0 * ratio),
           "exp": lambda: jnp.exp(5.0 * (ratio - 1.0))}[schedule]()
  return alpha * (1.0 - 1.0 / num_classes) + 1.0 / num_classes


def supervised_loss(logits, labels, eta):
  """Eq. 2; ``eta=None``: no annealing. Returns (loss, kept fraction)."""
  ce = optax.softmax_cross_entropy_with_integer_labels(
      logits.astype(jnp.float32), labels)
  if eta is None:
    return jnp.mean(ce), jnp.ones(())
  correct = jnp.take_along_axis(jax.nn.softmax(logits.astype(jnp.float32)),
                                labels[:, None], -1)[:, 0]
  keep = jax.lax.stop_gradient((correct <= eta).astype(jnp.float32))
  return jnp.sum(ce * keep) / jnp.maximum(jnp.sum(keep), 1.0), jnp.mean(keep)


def consistency_loss(teacher_logits, student_logits, temperature: float,
                     confidence: float):
  """Eqs. 4-5. Returns (loss, fraction of confident targets)."""
  teacher = jax.lax.stop_gradient(teacher_logits.astype(jnp.float32))
  target = jax.nn.softmax(teacher / temperature)
  log_q = jax.nn.log_softmax(student_logits.astype(jnp.float32))
  kl = jnp.sum(target * (jnp.log(jnp.maximum(target, 1e-30)) - log_q), -1)
  confident = (jnp.max(jax.nn.softmax(teacher), -1) > confidence).astype(
      jnp.float32)
  return jnp.mean(kl * confident), jnp.mean(confident)


def teacher_view(teacher, input_shape) -> Callable:
  """``variables -> the teacher's variables``: the student's at the paths
  the policy-free ``teacher`` model has."""
  shapes = jax.eval_shape(lambda: teacher.init(
      jax.random.key(0), jnp.zeros(input_shape), train=False))
  paths = [k for k in traverse_util.flatten_dict(shapes) if k[0] != "sites"]

  def view(variables):
    flat = traverse_util.flatten_dict(variables)
    return traverse_util.unflatten_dict({k: flat[k] for k in paths})
  return view


def make_train_step(model, teacher, view, tx, rate_factor_fn, base_key,
                    options, total, num_classes):
  """``train_step(state, batch)``: one UDA step (Eq. 1); ``teacher`` is
  the policy-free model, ``view`` from :func:`teacher_view`."""
  def train_step(state: TrainState, batch):
    key = jax.random.fold_in(base_key, state.step)
    factor = rate_factor_fn(state.step)
    variables = {"batch_stats": state.batch_stats}
    eta = (tsa_threshold(options["tsa"], state.step, total, num_classes)
           if options["tsa"] else None)
    labelled = batch["image"].shape[0]

    def loss_fn(params):
      targets, _ = teacher.apply(
          view({**variables, "params": params}), batch["unlabelled"],
          train=True, mutable=["batch_stats"])
      logits, updates = model.apply(
          {**variables, "params": params},
          jnp.concatenate([batch["image"], batch["unlabelled_aug"]]),
          train=True, rate_factor=factor, rngs={"dropout": key},
          mutable=["batch_stats"])
      sup, kept = supervised_loss(logits[:labelled], batch["label"], eta)
      unsup, confident = consistency_loss(
          targets, logits[labelled:], options["temperature"],
          options["confidence"])
      metrics = {"sup_loss": sup, "unsup_loss": unsup, "tsa_kept": kept,
                 "confident": confident, "accuracy": jnp.mean(
                     jnp.argmax(logits[:labelled], -1) == batch["label"])}
      return sup + options["coefficient"] * unsup, (metrics,
                                                    updates["batch_stats"])

    state, loss, metrics = supervised.gradient_step(state, tx, loss_fn)
    return state, {"loss": loss, **metrics, "rate_factor": factor}
  return train_step


def uda_options(config) -> Dict[str, Any]:
  return {"tsa": config.uda_tsa, "temperature": config.uda_temperature,
          "confidence": config.uda_confidence,
          "coefficient": config.uda_coefficient}


def load_splits(config):
  """Labelled (``train_examples`` by ``data_seed``), its eval-mode subset,
  the unlabelled pool (the whole split, or ``uda_unlabelled_examples`` of
  it), and the test split."""
  size = config.get("image_size", 0)
  labelled, fit = classifier.load_train_splits(config, size)
  pool = image_data.load_split(config.dataset, config.train_split,
                               config.data_dir, config.seed, size)
  if config.uda_unlabelled_examples:
    pool = image_data.subset(pool, config.uda_unlabelled_examples,
                             config.data_seed + 2, balanced=False)
  test = image_data.load_split(config.dataset, config.eval_split,
                               config.data_dir, config.seed, size)
  return labelled, fit, pool, test


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str
                       ) -> Dict[str, Any]:
  """UDA on ``config.dataset`` (an image classifier); writes and returns
  the results as the supervised trainer does, plus the UDA settings."""
  start_time = time.time()
  common.check_batch_sizes(config)
  common.ensure_writable(workdir)
  labelled, fit_split, pool, test_split = load_splits(config)
  input_shape = (1,) + tuple(labelled.image_shape)
  steps_per_epoch, total = supervised.steps_of(config, labelled.num_examples,
                                               "labelled images")
  config = common.resolved(config, num_train_steps=total)
  policy = classifier.build_policy(config, config.model, input_shape)
  built = supervised.setup(config, policy, labelled.num_classes,
                           steps_per_epoch)
  teacher = supervised.build_model(config, None, labelled.num_classes)
  step = make_train_step(built.model, teacher,
                         teacher_view(teacher, input_shape), built.tx,
                         built.rate_factor_fn, built.base_key,
                         uda_options(config), total, labelled.num_classes)
  _, eval_step = classifier.make_steps(built.model, built.tx,
                                       built.rate_factor_fn, built.base_key)
  train_step, eval_step, sharding, replicated = supervised.jit_steps(
      step, eval_step, built.mesh)
  state = supervised.init_state(built.model, built.tx, input_shape,
                                built.base_key, replicated)
  iterator = supervised.iterate(semi_supervised.uda_dataset(
      labelled, pool, global_batch=config.batch_size,
      unsup_ratio=config.uda_unsup_ratio, seed=config.seed,
      augment=config.augment, pad=config.crop_padding,
      randaugment=classifier.randaugment_options(config),
      image_size=config.get("image_size", 0)), config)

  def scores_on(split, state):
    return classifier.evaluate(eval_step, state, split,
                               config.eval_batch_size, sharding,
                               config.get("image_size", 0))

  state, run_log = supervised.train(
      config, workdir, state=state, iterator=iterator, train_step=train_step,
      evaluate=functools.partial(scores_on, test_split), sharding=sharding,
      policy=policy, mesh=built.mesh, lr_schedule=built.lr_schedule,
      steps_per_epoch=steps_per_epoch, examples="labelled images")
  scores, fit = supervised.final_scores(
      run_log, total, functools.partial(scores_on, state=state), test_split,
      fit_split)
  results = {**supervised.results_base(config, policy, total, start_time,
                                       built.mesh),
             "trainer": "uda", **{f"uda_{k}": v for k, v in
                                  uda_options(config).items()},
             "uda_unsup_ratio": config.uda_unsup_ratio,
             "test_loss": scores["loss"], "test_accuracy": scores["accuracy"],
             "test_top5": scores["top5"],
             "train_eval_accuracy": fit["accuracy"],
             "train_eval_loss": fit["loss"],
             "labelled_examples": labelled.num_examples,
             "unlabelled_examples": pool.num_examples,
             "train_examples": labelled.num_examples,
             "train_eval_examples": fit_split.num_examples}
  run_log.write_results(results)
  results["state"] = state
  return results
