"""The README's main job: a small ResNet on scikit-learn's digits, offline.

Trains with DropGraph (rho 0.1, alpha 0.25, block 2) in every block of the
last stage (relu1, bn2 and the shortcut of each basic block, the
references' sites), then the same run without a regularizer,
and prints both test accuracies. A couple of minutes on a laptop CPU.

    python -m dropgraph_jax.main --config configs/digits.py --workdir /tmp/digits
"""

from configs import default


def get_config():
  config = default.get_config()
  config.model = "resnet_digits"
  config.dataset = "digits"
  config.augment = "none"
  config.batch_size = 64
  config.eval_batch_size = 64
  config.num_epochs = 30.0
  config.learning_rate = 0.05
  config.lr_schedule = "cosine"
  config.weight_decay = 5e-4
  config.regularizer.name = "dropgraph"
  config.regularizer.rate = 0.1
  config.regularizer.alpha = 0.25
  config.regularizer.block_size = 2
  config.regularizer.stages = (2,)
  config.regularizer.ramp_epochs = 5.0
  config.log_every_steps = 50
  config.eval_every_epochs = 10.0
  config.checkpoint_every_steps = 200
  config.compare_baseline = True
  return config
