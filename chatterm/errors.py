"""Domain errors. Each carries the exit code the CLI uses and a one-line message for the user.

Domain modules raise these; ``chatterm.cli.errors`` turns them into a message on stderr and the
exit code, so no user ever sees a traceback for a problem they can fix.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_MODEL = 3
EXIT_CONTEXT = 4
EXIT_INTERRUPTED = 130


class ChattermError(Exception):
    """Base class: ``str(error)`` is a complete one-line message."""

    exit_code = EXIT_FAILURE


class CapabilityError(ChattermError):
    """The engine cannot do this at all (a server without a tokenizer endpoint cannot count
    tokens). Not a failure: front ends say so once, where the result would have been."""


class UsageError(ChattermError):
    """The user asked for something invalid (bad option value, unknown name)."""

    exit_code = EXIT_USAGE


class SettingError(UsageError):
    """A sampling or engine setting is out of its range."""


class ModelError(ChattermError):
    """The model is missing, is not a usable GGUF file, or failed to load."""

    exit_code = EXIT_MODEL


class ChatTemplateError(ModelError):
    """The model's own chat template does not compile, refused the conversation
    (``raise_exception``), failed, or went past its render budget: a property of the model
    file, so exit 3 like any other unusable model; the message carries the template's own."""


class ContextOverflowError(ChattermError):
    """The newest message (with the system prompt) cannot fit in the context window."""

    exit_code = EXIT_CONTEXT


class TemplateError(UsageError):
    """A chat, persona or prompt template failed to render."""


class StoreError(ChattermError):
    """The history database cannot be used (not a database, locked, unknown id)."""


class StoreLockedError(StoreError):
    """Another process held the history database longer than the busy timeout; trying again
    later may succeed."""


class HubError(ChattermError):
    """Downloading from the Hugging Face Hub failed; the message says what to do next."""
