"""`rl`: representation learning in JAX/Flax.

Import what you need: `from rl import losses` pulls in nothing else of `rl`.
"""
__version__ = "0.1.0"
