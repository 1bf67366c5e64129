"""The lab: see what the model sees and why it picks each token.

Domain code for the CLI (``chatterm tokenize``, ``chatterm lab …``) and the TUI's lab views:

- :mod:`chatterm.lab.distribution`: the next-token distribution (:class:`Distribution`) and
  :func:`explain`, which replays llama.cpp's sampling chain over it;
- :mod:`chatterm.lab.probs`: probability bands for colouring tokens;
- :mod:`chatterm.lab.compare`: one prompt through several variants (settings, persona, template,
  model) with the same seed;
- :mod:`chatterm.lab.experiments`: compare runs saved as JSON files, listed and re-run.

Nothing here imports textual or rich, and NumPy only inside the functions that need it.
"""

from __future__ import annotations
