"""Analysis tools: Grad-CAM and training curves."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dropgraph_jax.analysis import curves, gradcam
from dropgraph_jax.models import get_model


@pytest.mark.slow
def test_gradcam_of_a_pooled_linear_head_is_the_class_activation_map():
  # With logits = head(mean(A)), the gradient is W[:, c] / (H W) at every
  # pixel, so Grad-CAM is relu(A @ W[:, c]) scaled to [0, 1] (CAM).
  model = get_model("resnet_tiny")
  x = jax.random.normal(jax.random.key(0), (2, 16, 16, 3))
  variables = model.init(jax.random.key(1), x, train=False)
  heat = gradcam.gradcam(model, variables, x)
  assert heat.shape == (2, 16, 16)
  _, state = model.apply(variables, x, train=False,
                         capture_intermediates=True, mutable=["intermediates"])
  inter = state["intermediates"]
  features = inter[gradcam._last_block(inter)]["__call__"][0]
  logits = model.apply(variables, x, train=False)
  w = variables["params"]["head"]["kernel"][:, jnp.argmax(logits, -1)].T
  cam = jax.nn.relu(jnp.einsum("nhwc,nc->nhw", features, w))
  cam = jax.image.resize(cam, (2, 16, 16), "bilinear")
  cam = (cam - cam.min((1, 2), keepdims=True)) / (
      cam.max((1, 2), keepdims=True) - cam.min((1, 2), keepdims=True))
  np.testing.assert_allclose(heat, cam, atol=1e-5)
  assert heat.min() >= 0.0 and heat.max() <= 1.0


def test_curves_average_seeds_at_common_steps(tmp_path):
  for seed, scale in ((0, 1.0), (1, 3.0)):
    run = tmp_path / f"seed{seed}"
    run.mkdir()
    rows = [{"step": s, "train/loss": scale * s, "train/accuracy": 0.5}
            for s in (10, 20, 30)] + [{"step": 30, "eval/accuracy": 0.4}]
    (run / "log.txt").write_text("\n".join(map(json.dumps, rows)))
  runs = curves.parse_runs([f"a={tmp_path}/seed*"])
  steps, mean, std = curves.aggregate(runs["a"], "train/loss")
  np.testing.assert_array_equal(steps, [10, 20, 30])
  np.testing.assert_allclose(mean, [20, 40, 60])
  np.testing.assert_allclose(std, [10, 20, 30])
  assert curves.plot(runs, str(tmp_path / "c.png")).endswith("c.png")
  with pytest.raises(ValueError, match="matches no workdir"):
    curves.parse_runs([f"b={tmp_path}/nothing*"])


@pytest.mark.slow
def test_gradcam_cli_on_a_trained_digits_run(tmp_path):
  from configs import digits
  from dropgraph_jax.training import trainers
  config = digits.get_config()
  config.num_train_steps, config.eval_every_epochs = 8, 0.0
  config.compare_baseline, config.async_checkpointing = False, False
  trainers.train_and_evaluate(config, str(tmp_path / "run"))
  out = str(tmp_path / "gc.png")
  assert gradcam.main(["--workdir", str(tmp_path / "run"), "--images",
                       "0,5", "--out", out]) == 0
  assert (tmp_path / "gc.png").stat().st_size > 1000
  assert gradcam.main(["--workdir", str(tmp_path), "--out", out]) == 2
