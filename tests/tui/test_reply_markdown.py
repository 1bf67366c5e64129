"""How a finished reply's Markdown looks in the chat app: paragraphs apart, table columns
aligned as written, code blocks visible and scrollable."""

from __future__ import annotations

from textual.widgets._markdown import MarkdownFence, MarkdownParagraph, MarkdownTableContent

from chatterm.store import ConversationStore
from chatterm.tui.widgets.message_view import AssistantMessage

from .helpers import settle

REPLY = """First paragraph.

Second paragraph.

```python
print("a line long enough to need scrolling in a narrow transcript, and then some more")
```

| left | centre | right |
|:-----|:------:|------:|
| a | b | 12345 |
"""


def saved_reply() -> str:
    with ConversationStore() as store:
        conversation = store.create_conversation(model="fake-model")
        user = store.add_user_message(conversation.id, "show me")
        reply = store.start_assistant_message(conversation.id, parent_id=user.id)
        store.finish_assistant_message(reply.id, REPLY, status="complete", finish_reason="stop")
        return conversation.id


async def test_a_shown_reply_keeps_its_paragraphs_apart_aligns_tables_and_shows_code(make):
    conversation_id = saved_reply()
    app = make()
    async with app.run_test(size=(100, 40)) as pilot:
        await app.chat.open_conversation(conversation_id)
        await settle(pilot)
        view = list(app.chat.transcript.query(AssistantMessage))[-1]
        first, second = list(view.query(MarkdownParagraph))[:2]
        # The first paragraph's bottom margin is the blank line between the two.
        assert first.styles.margin.bottom == 1
        assert second.region.y > first.region.bottom
        (table,) = view.query(MarkdownTableContent)
        aligns = [str(cell.styles.text_align) for cell in table.children]
        assert aligns == ["left", "center", "right"] * 2
        (fence,) = view.query(MarkdownFence)
        assert fence.styles.scrollbar_size_horizontal == 1, "a long line shows a scrollbar"
        assert fence.max_scroll_x > 0
        assert fence.styles.background != view.styles.background
