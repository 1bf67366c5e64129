"""The Textual chat app (``chatterm`` or ``chatterm chat``).

Start it with :func:`chatterm.tui.factory.make_app`; nothing is imported, connected or loaded
when this package is imported.
"""
