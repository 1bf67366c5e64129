"""The ``chatterm`` command line. Modules here import only Typer at module level: the engine,
Textual and huggingface_hub load inside the commands that need them, so ``--help`` stays fast."""
