"""The package version, in a module of its own so low layers (model saving, the service) can read it
without importing the ``mmie`` package's public API, which itself reaches up into pipeline and training.

Keep it equal to ``version`` in pyproject.toml.
"""

__version__ = "0.1.0"
