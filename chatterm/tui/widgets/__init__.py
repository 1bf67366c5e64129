"""Widgets of the chat app: they render what they are given and post messages."""
