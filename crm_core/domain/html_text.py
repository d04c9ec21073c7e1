"""HTML mail bodies turned into text whose lines are the lines a reader sees.

The order rule looks for `Order:4` on a line of its own, so the line structure must be the
rendered one: source line breaks are white space in HTML, while `<br>`, `<p>`, `<div>`, `<tr>`,
`<li>` (and headings, tables, `<hr>`) break lines. Text inside `<blockquote>` is quoted text, so
its lines get a `> ` prefix, like quoted lines of a plain-text reply. Scripts, styles, comments and
the head are not text. Entities are decoded after the tags are gone, so `&lt;b&gt;` stays text.

Written for speed on untrusted input: one linear pass over the tags, no back-tracking pattern,
nothing quadratic on broken HTML (an unclosed `<script>` ends the text; an unclosed tag is text).
The output is bounded too: a quote prefix never grows past `MAX_QUOTE_DEPTH` levels, so thousands
of nested `<blockquote>` cannot turn a 100 KB body into a hundred million characters; and
`flatten_nesting` drops the tags of elements nested deeper than a reader can see, so that the
sanitizer (quadratic in depth) only ever sees shallow markup.
"""

from __future__ import annotations

import html
import re

# A start or end tag. A quoted attribute value may hold `<` and `>`, as browsers (and the
# sanitizer) read it: `<div title="<">` is a div, or nesting could hide from `flatten_nesting`.
# The loop is possessive (`*+`), so a tag that never ends costs one pass, not a backtracking storm.
_TAG = re.compile(
    r"<(/?)([a-zA-Z][a-zA-Z0-9]*)\b(?:=\s*\"[^\"]*\"|=\s*'[^']*'|[^<>])*+>"
    r"|<!--|<!\[CDATA\[|<![^<>]*>|<\?[^<>]*>"  # a comment, CDATA, a declaration, a processing instruction
)
_SPACE = re.compile(r"[ \t\r\n\f]+")
_BREAKING = frozenset(
    [
        "br",
        "p",
        "div",
        "tr",
        "li",
        "ul",
        "ol",
        "table",
        "tbody",
        "thead",
        "tfoot",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "pre",
        "address",
        "dl",
        "dt",
        "dd",
        "section",
        "article",
        "header",
        "footer",
        "blockquote",
        "center",
        "form",
        "fieldset",
    ]
)
_SKIPPED = frozenset(("script", "style", "head", "title", "template", "noscript", "xml"))
# The end tag of a skipped element, found in the original text: a lower-cased copy can be longer
# than the original (`İ` lower-cases to two characters), so its offsets would point elsewhere.
_SKIPPED_END = {name: re.compile("</" + name, re.IGNORECASE) for name in _SKIPPED}

# Deeper quotes than this read the same to a person; the prefix stops growing here.
MAX_QUOTE_DEPTH = 8
# Elements nested deeper than this are shown flat (their text kept, their tags dropped). Real mail
# rarely nests past 30 (Outlook's reply chains of tables in divs); a bomb nests thousands deep.
MAX_NESTING = 64
# Elements that never hold content, and elements whose start implicitly ends an open one of the
# same name (`<p>`, `<li>`, `<tr>`...): neither may count as a level of nesting.
_VOID = frozenset(
    ("area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr")
)
_SELF_CLOSING_SIBLINGS = frozenset(("p", "li", "dt", "dd", "tr", "td", "th", "option"))


def html_to_text(markup: str) -> str:
    """The text of an HTML body, with `\\n` where a reader sees a line break."""
    out: list[str] = []
    depth_quote = 0
    pre = 0
    pos = 0
    length = len(markup)

    def prefix() -> str:
        return "> " * min(depth_quote, MAX_QUOTE_DEPTH)

    def newline() -> None:
        out.append("\n")
        if depth_quote:
            out.append(prefix())

    def text(chunk: str) -> None:
        if not chunk:
            return
        if pre:
            chunk = chunk.replace("\r\n", "\n").replace("\r", "\n")
            decoded = html.unescape(chunk)
            if depth_quote:
                decoded = decoded.replace("\n", "\n" + prefix())
            out.append(decoded)
        else:
            out.append(html.unescape(_SPACE.sub(" ", chunk)))

    while pos < length:
        match = _TAG.search(markup, pos)
        if match is None:
            text(markup[pos:])
            break
        text(markup[pos : match.start()])
        token = match.group(0)
        pos = match.end()
        if token == "<!--":  # noqa: S105 - markup, not a password
            end = markup.find("-->", pos)
            pos = length if end < 0 else end + 3
            continue
        if token == "<![CDATA[":  # noqa: S105 - markup, not a password
            end = markup.find("]]>", pos)
            text(markup[pos : length if end < 0 else end])
            pos = length if end < 0 else end + 3
            continue
        name = (match.group(2) or "").lower()
        if not name:
            continue  # <!DOCTYPE ...>, <?xml ...?>
        closing = match.group(1) == "/"
        if not closing and name in _SKIPPED and not token.endswith("/>"):
            found = _SKIPPED_END[name].search(markup, pos)
            if found is None:
                break
            end = found.start()
            close = markup.find(">", end)
            pos = length if close < 0 else close + 1
            continue
        if name == "blockquote":
            if closing:
                depth_quote = max(0, depth_quote - 1)
                newline()
            else:
                depth_quote += 1
                newline()
            continue
        if name == "pre":
            pre = max(0, pre - 1) if closing else pre + 1
        if name in _BREAKING:
            newline()
        elif name in ("td", "th") and not closing:
            out.append(" ")
    return "".join(out)


def flatten_nesting(markup: str, max_depth: int = MAX_NESTING) -> tuple[str, bool]:
    """The markup with the tags of elements nested deeper than `max_depth` removed, their text kept.

    Returns the markup and whether anything was flattened. One linear pass; comments and the
    content of skipped elements (scripts, styles) pass through untouched for the sanitizer to drop.
    """
    out: list[str] = []
    stack: list[str] = []
    open_count: dict[str, int] = {}  # how many of each name are on the stack: no scan for a stray end tag
    flattened = False
    pos = 0
    length = len(markup)
    while pos < length:
        match = _TAG.search(markup, pos)
        if match is None:
            out.append(markup[pos:])
            break
        out.append(markup[pos : match.start()])
        token = match.group(0)
        pos = match.end()
        name = (match.group(2) or "").lower()
        if not name:
            out.append(token)
            closer = {"<!--": "-->", "<![CDATA[": "]]>"}.get(token)
            if closer is not None:
                end = markup.find(closer, pos)
                stop = length if end < 0 else end + 3
                out.append(markup[pos:stop])
                pos = stop
            continue
        if match.group(1) == "/":
            if open_count.get(name):
                depth = len(stack)  # the level of the innermost open `name`; what lies above it closes too
                while True:
                    closed = stack.pop()
                    open_count[closed] -= 1
                    if closed == name:
                        break
                    depth -= 1
                if depth > max_depth:
                    flattened = True
                    continue
            out.append(token)
            continue
        if name in _VOID or token.endswith("/>"):
            out.append(token)
            continue
        if name in _SELF_CLOSING_SIBLINGS and stack and stack[-1] == name:
            open_count[stack.pop()] -= 1
        stack.append(name)
        open_count[name] = open_count.get(name, 0) + 1
        if len(stack) > max_depth:
            flattened = True
            continue
        out.append(token)
        if name in _SKIPPED:
            found = _SKIPPED_END[name].search(markup, pos)
            stop = length if found is None else found.start()
            out.append(markup[pos:stop])
            pos = stop
    return "".join(out), flattened
