"""Untrusted text is text: the escaping helpers of mnistlab.views.text."""

from __future__ import annotations

import html
import re

import pytest

from mnistlab.views.text import ZWSP, code, html_text, md, plain, plural

PAYLOADS = [
    "![x](http://evil.example/x.png)",
    "[click](http://evil.example)",
    "<img src=http://evil.example/y.png>",
    "<script>alert(1)</script>",
    ":red[boom]",
    "$$\\int$$",
    ":material/home: :material_home: :smile:",
    "www.evil.example a@evil.example https://evil.example",
    "**bold** _it_ ~~gone~~ `code` # head | a |",
    "&amp; &lt;b&gt;",
    "line one\nline two\r\n# heading\n- item",
]
SPECIAL = set("\\`*_{}[]()#+-.!|<>:$~&/@")
PUNCTUATION = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def unescape_markdown(text: str) -> str:
    """What CommonMark shows for text that holds only backslash escapes (and our ZWSPs)."""
    return re.sub(r"\\(.)", r"\1", text).replace(ZWSP, "")


def live_markup(source: str) -> str:
    """The parts of a Markdown source that Markdown may still interpret: the source without
    its backslash-escaped characters and without its code spans (both shown as they are)."""
    out, i = [], 0
    while i < len(source):
        ch = source[i]
        if ch == "\\" and i + 1 < len(source) and source[i + 1] in PUNCTUATION:
            i += 2
            continue
        if ch == "`":
            fence = re.match(r"`+", source[i:]).group(0)
            close = re.compile(rf"(?<!`){fence}(?!`)").search(source, i + len(fence))
            if close:
                i = close.end()
                continue
            out.append(fence)
            i += len(fence)
            continue
        out.append(ch)
        i += 1
    return "".join(out)


#: What must never be left live in a Markdown source built from untrusted values.
LIVE_SYNTAX = ("](", "![", "<", ">", ":red[", "[boom]", "$", "*", "_", "`", ":material/", "http://", "https://",
               "www.", "@evil")


@pytest.mark.parametrize("payload", PAYLOADS)
def test_md_escapes_every_markdown_character_and_shows_the_same_text(payload):
    escaped = md(payload)
    assert not set(live_markup(escaped)) & SPECIAL, escaped
    assert unescape_markdown(escaped) == payload.replace("\r\n", "  ").replace("\n", " ")


def test_md_leaves_no_link_image_html_colour_icon_or_latex_syntax():
    for payload in PAYLOADS:
        live = live_markup(md(payload))
        assert not [syntax for syntax in LIVE_SYNTAX if syntax in live], (payload, live)


def test_the_check_sees_live_syntax_in_the_raw_payloads():
    assert all(any(syntax in live_markup(payload) for syntax in LIVE_SYNTAX) for payload in PAYLOADS[:9])
    assert live_markup("`<img>` \\<b\\> ``a`b`` ![x](") == " b  ![x]("


def test_md_breaks_the_patterns_streamlit_matches_after_parsing():
    # Icons, emoji shortcodes and bare-URL autolinks are found in the parsed text, where
    # escapes are gone: a zero-width space after ':', '@' and inside 'www.' breaks them.
    shown = unescape_markdown(md(":material_home: :smile: www.evil.example a@evil.example http://x.example"))
    assert shown == ":material_home: :smile: www.evil.example a@evil.example http://x.example"
    raw_text = md(":material_home: www.evil.example a@b.example").replace("\\", "")
    assert not re.search(r":material_\w+:", raw_text)
    assert not re.search(r"www\.", raw_text, re.IGNORECASE)
    assert not re.search(r"[\w.]+@[\w-]+\.", raw_text)


def test_md_turns_newlines_into_spaces_so_no_block_can_start():
    assert "\n" not in md("a\n# b\n\n- c\r\n> d\u2028e")
    assert md("a\nb") == "a b"


def test_md_cuts_long_text_with_an_ellipsis():
    assert md("x" * 5000) == "x" * 299 + "…"
    assert len(md("y" * 5000, limit=50)) == 50
    assert md("z" * 5000, limit=None) == "z" * 5000


def test_md_keeps_ordinary_text_readable():
    label = "cnn · digits · sgd · bs32 · 3ep · val=fraction"
    assert md(label) == label
    assert md("it's \"quoted\", 50%") == "it's \"quoted\", 50%"
    assert md(3) == "3" and md(None) == "None"
    assert md(ValueError("bad <value>")) == "bad \\<value\\>"


def test_plain_drops_control_and_bidi_characters():
    assert plain("a\x00b\tc\u202ed\u200be") == "a b cde"


@pytest.mark.parametrize("payload", ["0123456789abcdef", "a`b", "``x``", "`", "/tmp/evil ![x](http://e.example)",
                                     "$$\\int$$"])
def test_code_spans_cannot_be_broken_out_of(payload):
    span = code(payload)
    fence = re.match(r"`+", span).group(0)
    inner = span[len(fence):-len(fence)]
    assert span.endswith(fence) and live_markup(span) == ""
    assert not re.search(rf"(?<!`){fence}(?!`)", inner)  # no backtick run of the fence's length inside
    # CommonMark strips one space on each side when both are there.
    shown = inner[1:-1] if inner.startswith(" ") and inner.endswith(" ") and inner.strip() else inner
    assert shown == payload


def test_code_is_one_line_and_cut():
    assert code("a\nb") == "`a b`"
    assert len(code("x" * 5000)) == 302


@pytest.mark.parametrize("payload", PAYLOADS + ["%{y}", "a\"b'c"])
def test_html_text_is_inert_in_html_and_in_plotly(payload):
    escaped = html_text(payload)
    assert "<" not in escaped and ">" not in escaped and '"' not in escaped and "'" not in escaped
    assert "%" not in escaped and "$" not in escaped  # no Plotly %{...} template, no Plotly LaTeX
    assert "&quot;" not in escaped  # Plotly decodes numeric entities, not &quot;
    assert html.unescape(escaped) == payload.replace("\r\n", "  ").replace("\n", " ")


def test_html_text_cuts_long_text():
    assert html_text("x" * 5000) == "x" * 299 + "…"


def test_plural_counts_with_separators_and_picks_the_noun_form():
    assert plural(1, "run") == "1 run"
    assert plural(0, "run") == "0 runs"
    assert plural(1200, "run") == "1,200 runs"
    assert plural(2, "process", "processes") == "2 processes"
    assert plural(1, "was", "were") == "1 was" and plural(3, "was", "were") == "3 were"
