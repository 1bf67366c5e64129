"""The chat app's long-lived services, built once, for the CLI and the tests alike.

Widgets never build services: the app receives a :class:`ChatServices` and the chat screen
reads it. ``chatterm chat`` calls :func:`make_services` with the command-line options; tests
call it with a ``FakeEngine`` (or the real SmolLM2 engine) and get the same wiring
(:func:`chatterm.tui.factory.make_app` builds the app on top). No UI library here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from chatterm import services
from chatterm.catalog import Catalog, ModelEntry
from chatterm.config import Config, load_config
from chatterm.engine.base import Engine
from chatterm.prompts import PromptFile, list_prompts, load_prompt
from chatterm.sampling import SamplingSettings
from chatterm.services import EngineOptions
from chatterm.store import ConversationStore


@dataclass
class ChatServices:
    """What the chat app works with.

    ``engine`` is an engine already loaded (tests); when ``None`` the app loads
    ``options``' model with ``load_engine`` in a worker after the first paint. ``persona`` is
    the persona new conversations start with.
    """

    config: Config
    options: EngineOptions
    store: ConversationStore
    engine: Engine | None = None
    persona: PromptFile | None = None
    load_engine: Callable[[EngineOptions], Engine] = field(default=services.load_engine)
    models: Callable[[], list[ModelEntry]] = field(default=lambda: Catalog().entries())
    personas: Callable[[], list[PromptFile]] = field(default=lambda: list_prompts("persona"))
    templates: Callable[[], list[PromptFile]] = field(default=lambda: list_prompts("template"))

    def default_settings(self, persona: PromptFile | None = None) -> SamplingSettings:
        """config.toml [sampling] < the persona's front matter."""
        return services.sampling_settings(
            self.config, persona.settings if persona is not None else None
        )

    def find_persona(self, name: str | None) -> PromptFile | None:
        """The persona called ``name``; ``None`` when there is none (or it is now broken)."""
        if not name:
            return None
        for persona in self.personas():
            if persona.name == name and persona.ok:
                return persona
        return None


def make_services(
    options: EngineOptions | None = None,
    *,
    persona: str | None = None,
    engine: Engine | None = None,
    store: ConversationStore | None = None,
    config: Config | None = None,
    load_engine: Callable[[EngineOptions], Engine] | None = None,
) -> ChatServices:
    """Resolve config, persona and store. Raises ``ChattermError`` (unknown persona, unusable
    database, bad config) before any screen is drawn, so the CLI can print one line."""
    config = config or load_config()
    options = options or EngineOptions()
    persona_file = load_prompt("persona", persona) if persona else None
    store = store if store is not None else ConversationStore()
    built = ChatServices(config=config, options=options, store=store, engine=engine)
    built.persona = persona_file
    if load_engine is not None:
        built.load_engine = load_engine
    else:
        built.load_engine = lambda opts: services.load_engine(opts, config)
    return built
