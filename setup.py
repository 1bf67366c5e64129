"""Build hook only: everything else about the package is declared in pyproject.toml.

The bundled personas and templates live in ``prompts/`` at the top of the repository, where
people find and edit them, outside the ``chatterm`` package, so ``package-data`` cannot reach
them (and ``package-dir`` mappings are ignored by ``packages.find``). This ``build_py`` adds
them as data files of the package under ``chatterm/prompt_files/``, so wheels (and sdists, which
list the same data files) carry them. In a checkout or editable install
``chatterm.prompts.bundled_dir()`` reads ``prompts/`` directly.
"""

from __future__ import annotations

import os
from glob import glob

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithPrompts(build_py):
    def _prompt_files(self) -> list[tuple[str, str, str, list[str]]]:
        names = sorted(os.path.relpath(p, "prompts") for p in glob("prompts/*/*.md"))
        return [
            ("chatterm", "prompts", os.path.join(self.build_lib, "chatterm", "prompt_files"), names)
        ]

    def _get_data_files(self):  # type: ignore[no-untyped-def]
        return [*super()._get_data_files(), *self._prompt_files()]

    def get_data_files_without_manifest(self):  # type: ignore[no-untyped-def]
        return [*super().get_data_files_without_manifest(), *self._prompt_files()]


setup(cmdclass={"build_py": BuildPyWithPrompts})
