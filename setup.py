"""dropgraph_jax: learned and structured regularizers for Flax models.

Lower bounds are the versions this project was tested with (Python 3.11,
CPU). Install:
  pip install -e .           the library: regularizers, patterns, models
  pip install -e ".[train]"  plus the training application (TFDS, grain,
                             orbax, clu, ...): main job, search, tools
  pip install -e ".[test]"   plus the test suite's needs (includes train)
  pip install -e ".[ray]"    plus the Ray backend of the search
  pip install -e ".[graphs]" plus METIS for Cluster-GCN (ogbn-products)
"""

import os

from setuptools import find_packages, setup

# What `import dropgraph_jax` and the regularizers, patterns and models
# need; tests/test_packaging.py checks that nothing else is imported.
INSTALL_REQUIRES = [
    "jax>=0.10.2",
    "flax>=0.12.8",
    "optax>=0.2.8",
    "numpy>=2.4",
]

TRAIN_REQUIRES = [
    "tensorflow-datasets>=4.9.10",
    # tensorflow-cpu has no macOS arm64 wheel; tensorflow does.
    "tensorflow-cpu>=2.21.0; sys_platform != 'darwin' or "
    "platform_machine != 'arm64'",
    "tensorflow>=2.21.0; sys_platform == 'darwin' and "
    "platform_machine == 'arm64'",
    "importlib_resources>=7.1.0",  # TFDS store_as_tfds_dataset needs it
    "grain>=0.2.18",
    "clu>=0.0.12",
    "tensorboard>=2.21.0",  # clu imports it without declaring it
    "orbax-checkpoint>=0.12.8",
    "ml-collections>=1.1.0",
    "absl-py>=2.5.1",
    "scikit-learn>=1.9.1",  # load_digits: the offline demo data
    "matplotlib>=3.11.2",
    "pillow>=11.0",  # image decoding and RandAugment's ops
    "h5py>=3.10",  # ModelNet40's HDF5 files (DGCNN)
    "sentencepiece>=0.2",  # translation: joint subword vocabulary
    "sacrebleu>=2.4",  # translation: BLEU
    "scipy>=1.13",  # Planetoid's sparse matrices, t-tests of the tables
]

TEST_REQUIRES = TRAIN_REQUIRES + [
    "chex>=0.1.92",
    "pytest>=9.0.3",
    "pytest-xdist>=3.8.0",
    "ruff>=0.17.6",
    "pymetis>=2025.1",  # so the Cluster-GCN tests run
    "pdoc>=16.0",  # the API reference (docs/build_api.py), built by a test
    "nbclient>=0.11", "nbformat>=5.10", "ipykernel>=7.0",  # the quickstart
]


def _long_description() -> str:
  with open(os.path.join(os.path.dirname(__file__), "README.md"),
            encoding="utf-8") as f:
    return f.read()


setup(
    name="dropgraph_jax",
    version="0.1.0",
    description=("DropGraph, AutoDropout and baseline regularizers as pure "
                 "JAX transforms with Flax wrappers."),
    long_description=_long_description(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    classifiers=[
        "License :: OSI Approved :: Apache Software License",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
    python_requires=">=3.11",
    packages=find_packages(include=["dropgraph_jax", "dropgraph_jax.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "train": TRAIN_REQUIRES,
        "test": TEST_REQUIRES,
        "ray": ["ray>=2.60.0"],
        "graphs": ["pymetis>=2025.1"],  # Cluster-GCN's METIS partitions
    },
)
