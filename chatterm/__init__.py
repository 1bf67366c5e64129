"""chatterm: chat with local GGUF language models in the terminal, and see how they work."""

__version__ = "0.1.0"
