"""Input data of the training application (``pip install -e ".[train]"``).

- :mod:`images`: image classification splits (digits, TFDS, ImageFolder)
  and the grain pipeline (shuffle, augmentation, per-host slicing).
- :mod:`text`: word-level corpora (PTB, WikiText) as token streams.
"""
