from html.parser import HTMLParser

from core.reply import Reply, Table
from handlers.telegram.render import TELEGRAM_LIMIT, render_html


class _Balance(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack.pop() == tag

    def handle_data(self, data: str) -> None:
        self.text += data


def test_escapes_user_visible_text() -> None:
    msgs = render_html(Reply(title="A <b> & c", blocks=("x < y & z > w",), footer="<i>"))
    assert len(msgs) == 1
    assert "A &lt;b&gt; &amp; c" in msgs[0] and "x &lt; y &amp; z &gt; w" in msgs[0]


def test_long_table_split_under_limit_with_balanced_tags() -> None:
    rows = tuple((f"venue{i}<&>", f"{i:,}") for i in range(600))
    msgs = render_html(Reply(title="Big", blocks=(Table(header=("v", "n"), rows=rows, align="lr"),)))
    assert len(msgs) > 1
    seen = []
    for m in msgs:
        assert len(m) <= TELEGRAM_LIMIT
        p = _Balance()
        p.feed(m)
        assert p.stack == []
        seen.extend(line for line in p.text.splitlines() if line.startswith("venue"))
    assert [line.split()[0] for line in seen] == [f"venue{i}<&>" for i in range(600)]


def test_long_text_split_never_inside_entity() -> None:
    text = "&" * 9000
    msgs = render_html(Reply(title="t", blocks=(text,)))
    assert all(len(m) <= TELEGRAM_LIMIT for m in msgs)
    body = "".join(m.removeprefix("<b>t</b>\n\n") for m in msgs)
    assert body.replace("\n", "").count("&amp;") == 9000


def test_over_long_title_and_line_are_cut_never_empty() -> None:
    """A first part over the limit (a long /admin add argument) used to be sent as an empty message."""
    word = "x" * 9000
    for reply in (
        Reply(title=f"Unknown user {word}", error=True),
        Reply(title=word, blocks=(word + " " + word,)),
        Reply(title="t", blocks=(Table(header=("a",), rows=((word,),), align="l", caption=word),)),
    ):
        msgs = render_html(reply)
        assert msgs and all(0 < len(m) <= TELEGRAM_LIMIT and m.strip() for m in msgs), [len(m) for m in msgs]
        for m in msgs:
            p = _Balance()
            p.feed(m)
            assert p.stack == [] and p.text.strip()
