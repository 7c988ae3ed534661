"""Packaging for `rl`: representation learning in JAX/Flax.

The import package is `rl`; the distribution is `rl-replearn` because `rl` on PyPI is an
unrelated readline binding.

The core install is what `rl.losses` imports, so `pip install rl-replearn` is enough to use the losses in another
JAX project. The rest of `rl` comes with extras, named after who needs them:

* `models`: the Flax modules of `rl.models`;
* `train`: the trainer and what it imports (`rl.methods`, `rl.models`, `rl.eval`, `rl.train`,
  `rl.data.augment`, `experiments/`), enough to train on the embedded data sets (mnist1d, digits) or any
  in-memory one with no TensorFlow;
* `data`: the TFDS source of `rl.data` (tf.data pipelines for the streamed data sets, and TFDS builders of the
  embedded ones);
* `all`: models, train and data (`make run` and `make test` install `.[all,test]`);
* `test`: the test suite and the API reference; `gcs`: workdirs on `gs://` buckets.
"""
import setuptools

# rl.losses imports jax and numpy; `losses.sinkhorn_divergence` imports ott-jax inside the function.
INSTALL_REQUIRES = [
    "jax>=0.10,<0.13",
    "numpy>=1.26",
    "ott-jax>=0.6,<0.7",
]

MODELS = ["flax>=0.12,<0.13"]

TRAIN = MODELS + [
    "optax>=0.2.5,<0.3",  # rl.train (optimizers, schedules), rl.eval (L-BFGS probe), rl.methods
    "orbax-checkpoint>=0.11,<0.13",  # rl.train.checkpoint
    "ml-collections>=1.0,<2",  # configs/, rl.methods, rl.train
    "absl-py>=2",  # experiments/main.py flags
    "dm-pix>=0.4.3,<0.5",  # rl.data.augment (on-device image augmentation, inside the train step)
    "scikit-learn>=1.4,<2",  # rl.eval.plots (t-SNE), rl.data.embedded (the digits)
    "mnist1d>=0.0.2,<0.1",  # rl.data.embedded (the MNIST-1D generator)
    "matplotlib>=3.8,<4",  # rl.eval.plots
    "tqdm>=4.66,<5",  # rl.train.loop progress bar
    "tensorboardx>=2.6,<3",  # rl.train.writer
    "etils[epath]>=1.7",  # workdirs and data dirs, local or gs://
]

DATA = [
    "tensorflow-datasets>=4.9.8,<5",
    "tensorflow-cpu>=2.18,<2.22",
    "importlib_resources>=6",  # TFDS needs it to build datasets (tensorflow/datasets#11212)
    "mnist1d>=0.0.2,<0.1",  # rl.data.builders.mnist1d (through rl.data.embedded)
    "scikit-learn>=1.4,<2",  # rl.data.builders.digits (through rl.data.embedded)
    "etils[epath]>=1.7",  # rl.data.pipeline
]

# nbclient/nbformat/ipykernel run the notebooks in the suite; pdoc builds the API reference (`make docs`), whose
# references the suite checks; chex's tree comparisons and fake devices serve the tests only.
TEST = ["pytest>=8,<10", "pytest-xdist>=3.5,<4", "chex>=0.1.89,<0.2", "nbclient>=0.10,<1", "nbformat>=5.10,<6",
        "ipykernel>=6.29,<8", "pdoc>=15,<17"]

setuptools.setup(
    name="rl-replearn",
    version="0.1.0",
    description="Self-supervised and contrastive representation learning in JAX/Flax.",
    packages=setuptools.find_packages(include=["rl", "rl.*"]),
    python_requires=">=3.11",
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "models": MODELS,
        "train": TRAIN,
        "data": DATA,
        "all": sorted(set(MODELS + TRAIN + DATA)),
        "test": TEST,
        # A gs:// workdir: tensorboardX writes its event files through google-cloud-storage.
        "gcs": ["google-cloud-storage>=2,<4"],
    },
)
