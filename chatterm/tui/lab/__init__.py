"""The lab in the chat app: see what the model sees and why it chose each token.

- Probabilities (F3): replies coloured by token probability; select a token (F10, arrows or a
  click) for its candidates, the sampling stages that kept them and their odds after
  temperature. Saved with the message (``logprobs`` column, :mod:`.records`).
- Tokens (F4): the input or a message as the tokenizer splits it
  (:class:`chatterm.tui.screens.tokens.TokensScreen`).
- Sampling (F5): the next-token distribution, reshaped live by temperature, top-k, top-p and
  min-p (:class:`chatterm.tui.screens.sampling.SamplingScreen`).
- Compare (F8): one prompt through several variants in columns, saved as an experiment
  (:class:`chatterm.tui.screens.compare.CompareScreen`).
- Prompt (F9): the exact rendered prompt, special tokens and KV-cache reuse marked
  (:class:`chatterm.tui.screens.rendered_prompt.RenderedPromptScreen`).

:class:`.chat_layer.LabChat` wires them into the chat screen; the maths is
:mod:`chatterm.lab`'s.
"""
