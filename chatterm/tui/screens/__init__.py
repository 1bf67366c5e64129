"""Screens of the chat app: the chat itself, help, pickers and dialogs."""
