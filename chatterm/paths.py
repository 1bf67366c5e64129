"""Where chatterm keeps its files.

Every location is a function (never a module constant) so that tests and users can move all of
them at once with ``CHATTERM_HOME``; nothing here creates a directory at import time.
"""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "chatterm"


def home_override() -> Path | None:
    """The ``CHATTERM_HOME`` directory, when set: it holds config, data and cache together.

    Raises :class:`~chatterm.errors.UsageError` when it names something that is not a
    directory (a file, a symlink loop), so every command says so in one line."""
    value = os.environ.get("CHATTERM_HOME")
    if not value:
        return None
    from chatterm.errors import UsageError

    try:
        home = Path(value).expanduser().resolve(strict=False)
        is_dir = home.is_dir()
        exists = is_dir or os.path.lexists(home)
    except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop: RuntimeError < 3.13
        raise UsageError(f"CHATTERM_HOME={value!r} cannot be used: {exc}") from None
    if exists and not is_dir:
        raise UsageError(f"CHATTERM_HOME={value!r} is not a directory")
    return home


def config_dir() -> Path:
    home = home_override()
    if home:
        return home / "config"
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def data_dir() -> Path:
    home = home_override()
    if home:
        return home / "data"
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def cache_dir() -> Path:
    home = home_override()
    if home:
        return home / "cache"
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def models_dir() -> Path:
    return data_dir() / "models"


def database_path() -> Path:
    return data_dir() / "history.db"


def config_file() -> Path:
    return config_dir() / "config.toml"


def kv_cache_dir() -> Path:
    """Saved KV states of conversations, so a reopened chat does not re-prefill its history."""
    return cache_dir() / "kv"


def user_prompts_dir() -> Path:
    return config_dir() / "prompts"


def all_paths() -> dict[str, Path]:
    """The locations ``chatterm paths`` prints, by name."""
    return {
        "config": config_dir(),
        "data": data_dir(),
        "cache": cache_dir(),
        "models": models_dir(),
        "database": database_path(),
        "config_file": config_file(),
        "prompts": user_prompts_dir(),
    }
