"""The plain-Python streaming helpers: token batching, the open-fence splitter, code blocks."""

from __future__ import annotations

from chatterm.tui.streaming import StreamSplitter, TokenBatcher, code_blocks


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_batcher_posts_the_first_token_at_once_then_waits_for_the_interval():
    clock = Clock()
    batcher = TokenBatcher(0.1, clock)
    assert batcher.add("a") is True
    assert batcher.take() == ("a", 1)
    clock.now += 0.01
    assert batcher.add("b") is False
    clock.now += 0.01
    assert batcher.add("c") is False
    clock.now += 0.1
    assert batcher.add("d") is True
    assert batcher.take() == ("bcd", 3)
    assert batcher.total_tokens == 4


def test_batcher_take_when_empty_returns_nothing():
    batcher = TokenBatcher(0.1, Clock())
    assert batcher.take() == ("", 0)


def feed_all(splitter: StreamSplitter, pieces: list[str]) -> list[str]:
    return [splitter.feed(p) for p in pieces]


def test_a_paragraph_settles_when_a_blank_line_ends_it():
    splitter = StreamSplitter()
    assert feed_all(splitter, ["Hello", " world", "\n", "\nMore"]) == [
        "",
        "",
        "",
        "Hello world\n\n",
    ]
    assert splitter.tail == "More"


def test_an_open_code_fence_stays_in_the_tail_until_it_closes():
    splitter = StreamSplitter()
    out = feed_all(splitter, ["Here:\n\n", "```py", "thon\n", "x = 1\n", "\n", "y = 2\n"])
    assert "".join(out) == "Here:\n\n", "a blank line inside a fence ends nothing"
    assert splitter.in_fence
    assert splitter.tail == "```python\nx = 1\n\ny = 2\n"
    closed = splitter.feed("```\n")
    assert closed == "```python\nx = 1\n\ny = 2\n```\n"
    assert splitter.tail == "" and not splitter.in_fence


def test_inline_code_with_backticks_is_not_a_fence():
    splitter = StreamSplitter()
    assert splitter.feed("``x`` is code\n\nnext") == "``x`` is code\n\n"
    assert not splitter.in_fence


def test_tilde_fence_closes_only_with_tildes():
    splitter = StreamSplitter()
    splitter.feed("~~~\ncode\n```\n")
    assert splitter.in_fence
    assert splitter.feed("~~~~\nafter") == "~~~\ncode\n```\n~~~~\n"
    assert splitter.tail == "after"


def test_settled_plus_tail_is_always_the_whole_text():
    text = "a\n\n```js\nlet x\n\n```\nb `c` d\n\n~~~\nz"
    splitter = StreamSplitter()
    settled = ""
    for ch in text:
        settled += splitter.feed(ch)
        assert settled + splitter.tail == splitter.text
    assert splitter.text == text


def test_code_blocks_finds_each_fenced_block():
    text = "x\n```py\nprint(1)\n```\ntext\n~~~\na\nb\n~~~\n```\nunclosed"
    assert code_blocks(text) == ["print(1)", "a\nb", "unclosed"]


def test_code_blocks_none():
    assert code_blocks("just `inline` code") == []


def test_open_block_formatting_applies_the_obvious_marks():
    from chatterm.tui.widgets.open_block import open_block_content

    content = open_block_content("# Title\nSome **bold**, *it* and `code`\n- item\n```py\nx = 1")
    assert content.plain == "Title\nSome bold, it and code\n• item\n```py\nx = 1"
    styled = {content.plain[s.start : s.end]: str(s.style) for s in content.spans}
    assert styled["Title"] == "bold" and styled["bold"] == "bold" and styled["it"] == "italic"
    assert styled["```py"] == "dim" and "x = 1" in styled


def test_open_block_formatting_leaves_unclosed_marks_alone():
    from chatterm.tui.widgets.open_block import open_block_content

    assert open_block_content("a **half and `open").plain == "a **half and `open"


def test_completed_prose_waits_for_the_settle_interval_but_a_closed_fence_does_not():
    clock = Clock()
    splitter = StreamSplitter(1.5, clock)
    assert splitter.feed("One.\n\n") == "One.\n\n", "the first block goes at once"
    clock.now += 0.5
    assert splitter.feed("Two.\n\nThr") == ""
    assert splitter.tail == "Two.\n\nThr"
    clock.now += 1.0
    assert splitter.feed("ee.") == "Two.\n\n"
    clock.now += 0.1
    assert splitter.feed("\n\n```py\nx = 1\n```\n") == "Three.\n\n```py\nx = 1\n```\n"
    assert splitter.tail == ""
