"""Untrusted text as text: one place that makes any value safe for the medium it goes into.

mnistlab can be hosted for strangers. A share link's parameters, an imported bundle, a
stored run file, a progress record and a data source's path or reason are all untrusted: a
value like ``![x](http://evil.example/x.png)`` must show as those characters, never as an
image fetched from a foreign host, a link, coloured text, an icon, a formula or HTML.

The rule: **values stay plain text until the moment they are put into a format, and the
code that puts them there escapes them with one of these helpers**. Every interpolated
value goes through here, also the ones we believe safe (run labels built from validated
configurations), so a reader never has to decide which are. Static text written by us is
left as is (it may use Markdown on purpose); so are numbers we format and text from our own
tables (architecture descriptions, the configuration fields' help).

- :func:`md` for anything Streamlit renders as Markdown: ``st.markdown``, ``st.caption``,
  ``st.title``/``st.subheader``, ``st.warning``/``info``/``error``/``success``,
  ``st.toast``, ``st.progress`` text, ``st.metric`` label, value and delta, labels of
  buttons, expanders, popovers, page links and widgets, radio options, ``st.image``
  captions, ``help=`` tooltips, and dynamic dataframe column labels. Not for
  selectbox/multiselect *options* nor dataframe cells (plain text there: the backslashes
  would show).
- :func:`code` for a value shown as an inline code span inside Markdown (run ids, paths,
  fingerprints): monospace, nothing inside it is Markdown, and a backtick in the value
  cannot close the span early.
- :func:`html_text` for HTML and for Plotly: titles, subplot titles, axis titles, trace
  (legend) names, hover text and annotations (Plotly reads ``<b>``, ``<br>``, ``<a href>``
  and entities in all of them), and the HTML report. Plotly's ``hovertemplate`` also reads
  ``%{...}``: :func:`html_text` encodes ``%`` too, so a value can be put into a template.

Messages built from link values (``mnistlab.views.share``) are plain text, like every
other library output; the page escapes them where it shows them
(``pages.common.show_link_messages`` uses :func:`md`).

How :func:`md` works (checked by rendering in Streamlit 1.67 in Chromium): every
Markdown/HTML-significant ASCII character ``\\ ` * _ { } [ ] ( ) # + - . ! | < > : $ ~ & / @``
is backslash-escaped (CommonMark renders an escaped punctuation character as itself; ``\\$``
also keeps Streamlit from loading KaTeX, ``\\:`` and ``\\[`` break ``:red[...]`` directives,
``\\/`` keeps Streamlit's source-level ``:material/`` rewrite from matching). Quotes and
``=`` stay as they are: they mean nothing outside link syntax, which the escapes break.
Streamlit also runs some extensions on the *text* after parsing, where escapes are gone:
``:material_icon:`` icons, ``:emoji:`` shortcodes and GitHub's bare-URL/``www.``/e-mail
autolinks. So an escaped colon or ``@``, and the ``www`` of ``www.``, get an invisible
zero-width space after them, which no such pattern matches. Newlines (which would start
new blocks: headings, lists, tables) become spaces, other control and bidirectional-override
characters go, and long values are cut with an ellipsis (``limit``, 300 by default; give
messages that quote a value more room). Left as Streamlit does it, harmlessly: its
typographic replacements (`` -> `` shows as an arrow), and inside :func:`code` spans
``:material/`` shows as ``:material_``.
"""

from __future__ import annotations

import html
import re
import unicodedata
from typing import Any

__all__ = ["code", "html_text", "md", "plain"]

DEFAULT_LIMIT = 300
ELLIPSIS = "…"
ZWSP = "\u200b"  # zero-width space: invisible, and no Markdown extension pattern matches across it

# Markdown- and HTML-significant ASCII punctuation. CommonMark lets any ASCII punctuation be
# backslash-escaped and then renders it as itself. Quotes are not special outside link
# syntax (which the brackets' escapes already break), so they stay readable.
_MARKDOWN_SPECIAL = set("\\`*_{}[]()#+-.!|<>:$~&/@")
_BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def plain(value: Any, limit: int | None = DEFAULT_LIMIT) -> str:
    """``value`` as one line of printable text: newlines and control characters become
    spaces, bidirectional overrides and zero-width characters go, and text longer than
    ``limit`` characters (None: no limit) is cut with an ellipsis. No escaping."""
    text = value if isinstance(value, str) else str(value)
    out = []
    for ch in text:
        if ch in _BIDI or ch in "\u200b\u200c\u200d\u2060\ufeff":
            continue
        category = unicodedata.category(ch)
        out.append(" " if category in ("Cc", "Zl", "Zp") else ch)
    text = "".join(out)
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 0)] + ELLIPSIS
    return text


def md(value: Any, limit: int | None = DEFAULT_LIMIT) -> str:
    """``value`` escaped for interpolation into Streamlit Markdown: it renders as exactly its
    characters (on one line, cut at ``limit``), with no formatting, link, image, HTML,
    colour, icon, emoji or LaTeX."""
    text = plain(value, limit)
    escaped = "".join("\\" + ch if ch in _MARKDOWN_SPECIAL else ch for ch in text)
    # After escaping: a ZWSP after ':' and '@' and inside 'www.' / 'http:' breaks the text-level
    # patterns. It is inserted after the escaped character, so '\\:' stays one escape.
    return re.sub(r"(\\:|\\@)|((?i:www))(?=\\\.)", lambda m: (m.group(1) or m.group(2)) + ZWSP, escaped)


def code(value: Any, limit: int | None = DEFAULT_LIMIT) -> str:
    """``value`` as an inline code span for Markdown, backticks and all: the fence is one
    backtick longer than the longest run of backticks inside, and padded with spaces."""
    text = plain(value, limit)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or longest else ""
    if not text.strip():
        text = text or " "
    return f"{fence}{pad}{text}{pad}{fence}"


def html_text(value: Any, limit: int | None = DEFAULT_LIMIT) -> str:
    """``value`` escaped for HTML and for Plotly text (titles, names, hover, annotations):
    ``& < > " '`` as entities Plotly also decodes, ``%`` as ``&#37;`` so it never starts a
    Plotly ``%{...}`` template, ``$`` as ``&#36;`` so it never starts Plotly's LaTeX. One
    line, cut at ``limit``."""
    text = html.escape(plain(value, limit), quote=True)
    # Plotly decodes numeric entities but not &quot;: use the numeric form (valid HTML too).
    return text.replace("&quot;", "&#34;").replace("&#x27;", "&#39;").replace("%", "&#37;").replace("$", "&#36;")


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``count`` and the noun in the right number, the count with thousands separators:
    ``plural(1, "run")`` is ``1 run``, ``plural(1200, "run")`` is ``1,200 runs``,
    ``plural(2, "was", "were")`` is ``2 were``. For our own nouns only (no escaping)."""
    return f"{count:,} {noun if count == 1 else (nouns or noun + 's')}"
