"""Engines: what turns chat messages into a stream of events.

- :mod:`.base`: the contract (:class:`~.base.Engine` for every caller, :class:`~.base.LocalModel`
  for what only an in-process model can do) and the prompt types;
- :mod:`.events`: what a generation yields;
- :mod:`.context`: the context-window policy (:func:`~.context.plan_context`);
- :mod:`.llama_engine`: llama.cpp, with our own token loop and sampler chain;
- :mod:`.remote`: OpenAI-compatible servers; :mod:`.fake`: the scripted fake for UI tests.

Importing this package loads no model runtime.
"""
