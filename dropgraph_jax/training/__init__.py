"""The training application (``pip install -e ".[train]"``).

- :mod:`trainers`: the entry, ``train_and_evaluate(config, workdir)``, and
  the registry of trainers by model kind.
- :mod:`classifier`, :mod:`language_model`: the two trainers.
- :mod:`common`: what both share (mesh, batch checks, workdir, policy
  file, resolved config); imports neither trainer.
- :mod:`optimizers`, :mod:`checkpointing` (the one module that imports
  orbax), :mod:`run_log` (TensorBoard + ``log.txt`` + ``results.json``).

This package's ``__init__`` imports nothing, so the search engine can use
:mod:`checkpointing` without loading the trainers.
"""
