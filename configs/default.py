"""Base config: every field the trainer reads, with neutral defaults.

Experiment configs import this and override what they change. Any field
can be set on the command line: ``--config.batch_size=256``.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.model = "resnet50_cifar"
  config.model_kwargs = ml_collections.ConfigDict()
  config.dtype = "float32"            # compute dtype; params stay float32

  config.dataset = "cifar10"          # 'digits', 'folder:ROOT' or a TFDS name
  config.data_dir = ""                # TFDS data_dir; LM: corpus directory
  config.train_split = "train"        # TFDS slices work: 'train[:90%]'
  config.eval_split = "test"
  config.augment = "crop_flip"        # 'inception_crop_flip', 'none'
  config.crop_padding = 4
  config.image_size = 0               # > 0: resize/crop to this (ImageNet)
  config.seq_len = 70                 # LM: segment length (tokens)
  config.mem_len = 70                 # LM: memory length (tokens)
  config.input_threads = 8            # grain worker threads
  config.prefetch_batches = 16        # batches prepared ahead of the step

  config.batch_size = 128
  config.eval_batch_size = 256
  config.num_epochs = 300.0
  config.num_train_steps = 0          # > 0 overrides num_epochs

  config.optimizer = "sgd"            # see dropgraph_jax.training.optimizers
  config.learning_rate = 0.1
  config.lr_schedule = "piecewise"    # 'cosine', 'exponential', 'constant'
  config.lr_boundaries_epochs = (150, 250)
  config.lr_decay = 0.1
  config.lr_decay_epochs = 2.4        # 'exponential': decay period
  config.warmup_epochs = 0.0
  config.momentum = 0.9
  config.nesterov = False
  config.weight_decay = 5e-4
  config.grad_clip_norm = 0.0         # > 0: clip the global norm
  config.label_smoothing = 0.0

  config.regularizer = ml_collections.ConfigDict()
  config.regularizer.name = "none"    # none, policy or a name of
                                      # dropgraph_jax.regularizers.registry
  config.regularizer.rate = 0.1       # rho for Disout / DropGraph
  config.regularizer.block_size = 3
  config.regularizer.alpha = 0.2      # DropGraph vertex sampling rate
  config.regularizer.placement = "paper"  # 'paper' or 'all'
  config.regularizer.stages = (3, 4)  # 'paper': the last two groups
  config.regularizer.site_labels = r"relu\d|shortcut"  # 'paper': which
                                      # sites of a block (a regex)
  config.regularizer.blocks = ()      # 'paper': only these blocks of the
                                      # last listed stage (RegNetX)
  config.regularizer.schedule = "linear"  # ramp of every RegularizerSpec
                                          # site's rate (ConvPattern /
                                          # TransformerPattern sites of a
                                          # policy keep their own)
  config.regularizer.ramp_epochs = 0.0    # 0: full rate from the start
  config.regularizer.policy_file = ""     # name='policy': a policy JSON
  # Further keyword options of the regularizer, e.g. DropGraph's
  # adjacency / generator for the Table 6 and 8 ablations.
  config.regularizer.options = ml_collections.ConfigDict()
  # name='variational_dropout' (language models): rates per site group.
  config.regularizer.variational = ml_collections.ConfigDict(
      {"embedding": 0.4, "hidden": 0.25, "attention": 0.1, "final": 0.4})

  config.mesh_devices = 0             # 0: every device; n: the first n
  config.seed = 0
  config.log_every_steps = 100
  config.eval_every_epochs = 10.0     # 0 disables evaluation during training
  config.checkpoint_every_steps = 1000
  config.keep_checkpoints = 3
  config.async_checkpointing = True
  config.preempt_at_step = 0          # testing hook: simulate a kill
  config.compare_baseline = False     # also train with regularizer 'none'
  return config
