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
  config.train_examples = 0           # > 0: a class-balanced subset
  config.data_seed = 0                # draws that subset (not config.seed)
  config.train_eval_examples = 2000   # training images scored in eval mode
                                      # at the end (train_eval_accuracy)
  config.eval_split = "test"
  config.augment = "crop_flip"        # 'inception_crop_flip', 'none'
  config.crop_padding = 4
  config.randaugment_layers = 0       # RandAugment N (0: off)
  config.randaugment_magnitude = 9.0  # RandAugment M (0-10 scale)
  config.randaugment_variant = "paper"  # or 'efficientnet' (the TF code's)
  config.randaugment_translate = 100 / 224  # max shift, fraction of width
  config.randaugment_cutout = 40 / 224  # max cutout half-side, likewise

  # Semi-supervised training (trainer 'uda', dropgraph_jax.training.uda).
  config.trainer = ""                 # '': by the model's kind; or 'uda'
  config.uda_unsup_ratio = 7          # unlabelled images per labelled one
  config.uda_tsa = ""                 # '', 'linear', 'log', 'exp'
  config.uda_temperature = 0.4        # target sharpening (1: none)
  config.uda_confidence = 0.8         # mask targets less confident (0: off)
  config.uda_coefficient = 1.0        # weight of the consistency loss
  config.uda_unlabelled_examples = 0  # > 0: a subset of the pool

  # Translation (dropgraph_jax.training.translation), dataset 'parallel:ROOT'.
  config.source_lang, config.target_lang = "de", "en"
  config.test_split = "test"          # BLEU at the end
  config.vocab_size = 10000           # joint sentencepiece (BPE) pieces
  config.max_len = 64                 # subword tokens per side
  config.beam_size = 4
  config.length_penalty = 0.6         # GNMT alpha (0: rank by log p)
  config.bleu_examples = 0            # > 0: BLEU on the first n only
  config.adam_b2 = 0.999              # optimizer 'adam'
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
  config.regularizer.block_sites = "reference"  # 'paper': the sites of a
                                      # block: DropBlock's / Disout's
                                      # references ('reference') or
                                      # 'post_activation' (the placement of
                                      # this project before 0.2)
  config.regularizer.site_labels = ""  # a regex overriding block_sites
  config.regularizer.stage_rate_scales = ()  # 'paper': a rate factor per
                                      # stage, e.g. (0.25, 1.0): the
                                      # references' quarter rate in group 3
  config.regularizer.blocks = ()      # 'paper': only these blocks of the
                                      # last listed stage (RegNetX)
  config.regularizer.schedule = "linear"  # ramp of every RegularizerSpec
                                          # site's rate (ConvPattern /
                                          # TransformerPattern sites of a
                                          # policy keep their own)
  config.regularizer.ramp_epochs = 0.0    # 0: full rate from the start;
                                          # < 0: ramp over the whole run
  config.regularizer.policy_file = ""     # name='policy': a policy JSON
  config.regularizer.attention_rate = 0.0  # translation: attention dropout
  # Further keyword options of the regularizer, e.g. DropGraph's
  # adjacency / generator for the Table 6 and 8 ablations.
  config.regularizer.options = ml_collections.ConfigDict()
  # name='variational_dropout' (language models): rates per site group.
  config.regularizer.variational = ml_collections.ConfigDict(
      {"embedding": 0.4, "hidden": 0.25, "attention": 0.1, "final": 0.4})

  config.mesh_devices = 0             # 0: every device; n: the first n
  config.seed = 0
  config.log_every_steps = 100
  config.tensorboard = True           # TensorBoard summaries (process 0);
                                      # False skips importing TensorFlow
  config.eval_every_epochs = 10.0     # 0 disables evaluation during training
  config.checkpoint_every_steps = 1000
  config.keep_checkpoints = 3
  config.async_checkpointing = True
  config.preempt_at_step = 0          # testing hook: simulate a kill
  config.allow_config_change = False  # resume with changed fields (see
                                      # training.common.record_config)
  config.compare_baseline = False     # also train with regularizer 'none'
  return config


# Disout's reference hyper-parameters: huawei-noah/Disout ``train.py``
# (CIFAR: dist_prob 0.09, block 6, alpha 5) and its ImageNet script
# (dist_prob 0.07, block 7, alpha 1); blocks are clipped to maps smaller
# than the block (stage 4 of a CIFAR ResNet-50 is 4x4).
DISOUT_REFERENCE = {
    "cifar": {"rate": 0.09, "block_size": 6, "alpha": 5.0},
    "imagenet": {"rate": 0.07, "block_size": 7, "alpha": 1.0},
}


def use_reference_schedule(config, regularizer: str, family: str) -> None:
  """DropBlock's and Disout's reference schedule and, for Disout, its
  reference hyper-parameters (``family``: 'cifar' or 'imagenet').

  The rate ramps linearly from 0 over the whole run and group 3 gets a
  quarter of group 4's rate (TPU ResNet's DropBlock, Disout's
  ``resnet_imagenet.py``). The previous setting (a ramp over the first
  epochs, the same rate in both groups) is one override away:
  ``--config.regularizer.ramp_epochs=50 --config.regularizer.stage_rate_scales='(1.0, 1.0)'``.
  """
  config.regularizer.ramp_epochs = -1.0
  config.regularizer.stage_rate_scales = (0.25, 1.0)
  if regularizer == "disout":
    ref = DISOUT_REFERENCE[family]
    config.regularizer.rate = ref["rate"]
    config.regularizer.block_size = ref["block_size"]
    config.regularizer.options.alpha = ref["alpha"]
    config.regularizer.options.clip_block_size = True
