"""Packaging for `rl`: representation learning in JAX/Flax.

The import package is `rl`; the distribution is `rl-replearn` because `rl` on PyPI is an
unrelated readline binding.
"""
import setuptools

INSTALL_REQUIRES = [
    "jax>=0.10,<0.13",
    "flax>=0.12,<0.13",
    "optax>=0.2.5,<0.3",
    "orbax-checkpoint>=0.11,<0.13",
    "tensorflow-datasets>=4.9.8,<5",
    "tensorflow-cpu>=2.18,<2.22",
    "ml-collections>=1.0,<2",
    "chex>=0.1.89,<0.2",
    "dm-pix>=0.4.3,<0.5",
    "mnist1d>=0.0.2,<0.1",
    "scikit-learn>=1.4,<2",
    "matplotlib>=3.8,<4",
    "tqdm>=4.66,<5",
    "tensorboardx>=2.6,<3",
    "importlib_resources>=6",  # TFDS needs it to build datasets (tensorflow/datasets#11212)
    "etils[epath]>=1.7",
    "ott-jax>=0.6,<0.7",
]

setuptools.setup(
    name="rl-replearn",
    version="0.1.0",
    description="Self-supervised and contrastive representation learning in JAX/Flax.",
    packages=setuptools.find_packages(include=["rl", "rl.*"]),
    python_requires=">=3.11",
    install_requires=INSTALL_REQUIRES,
    # nbclient/nbformat/ipykernel run the notebooks in the suite; pdoc builds the API reference (`make docs`), whose
    # references the suite checks.
    extras_require={"test": ["pytest>=8,<10", "pytest-xdist>=3.5,<4", "nbclient>=0.10,<1", "nbformat>=5.10,<6",
                             "ipykernel>=6.29,<8", "pdoc>=15,<17"],
                    # A gs:// workdir: tensorboardX writes its event files through google-cloud-storage.
                    "gcs": ["google-cloud-storage>=2,<4"]},
)
