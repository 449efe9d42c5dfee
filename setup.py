"""dropgraph_jax: learned and structured regularizers for Flax models.

Lower bounds are the versions this project was tested with (Python 3.11,
CPU). Install:  pip install -e .          (library + demo)
                pip install -e ".[test]"  (plus the test suite's needs)
                pip install -e ".[ray]"   (distributed search backend)
"""

from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "jax>=0.10.2",
    "flax>=0.12.8",
    "optax>=0.2.8",
    "chex>=0.1.92",
    "ml-collections>=1.1.0",
    "orbax-checkpoint>=0.12.8",
    "tensorflow-datasets>=4.9.10",
    "tensorflow-cpu>=2.21.0",
    "grain>=0.2.18",
    "clu>=0.0.12",
    "tensorboard>=2.21.0",  # clu imports it without declaring it
    "importlib_resources>=7.1.0",  # TFDS store_as_tfds_dataset needs it
    "absl-py>=2.5.1",
    "numpy>=2.4",
    "scikit-learn>=1.9.1",  # load_digits: the offline demo data
    "matplotlib>=3.11.2",
]

setup(
    name="dropgraph_jax",
    version="0.1.0",
    description=("DropGraph, AutoDropout and baseline regularizers as pure "
                 "JAX transforms with Flax wrappers."),
    python_requires=">=3.11",
    packages=find_packages(include=["dropgraph_jax", "dropgraph_jax.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "test": ["pytest>=9.0.3", "pytest-xdist>=3.8.0"],
        "ray": ["ray>=2.60.0"],
    },
)
