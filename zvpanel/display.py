"""What pages, messages and logs show: names as text, secrets in URLs masked.

Names people type are escaped for HTML and Markdown and made inert in CSV files;
camera sources and database URLs are shown through :func:`mask_source`.

Store, camera, line and user names are typed by users, and pages show them to every
other user. Wherever such text enters HTML or Markdown it goes through :func:`html_text`
or :func:`markdown_text`; wherever it enters a CSV download, through :func:`csv_cell`
(or :func:`csv_frame` for a whole table).

Widgets that take plain strings (Bokeh's ``Select``, ``TextInput``, table cells with
Bokeh's ``StringFormatter``) already show them as text and need nothing. Bokeh's
``MultiChoice`` does not: its Choices.js sets the option labels as ``innerHTML``, so
labels given to it go through :func:`html_text`.
"""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pandas as pd

__all__ = [
    "html_text",
    "markdown_text",
    "csv_cell",
    "csv_frame",
    "CSV_FORMULA_PREFIXES",
    "mask_source",
    "SECRET_MASK",
    "SECRET_QUERY_KEYS",
]

#: Characters that can open Markdown markup or HTML anywhere in a line (``_`` only at a
#: word's edge: inside a word it cannot), and punctuation at the start (a list, quote or
#: heading). CommonMark shows each literally after a backslash; other punctuation is left
#: as it is, so ``snake_case`` and paths stay readable in the pane's ``object``.
_MARKDOWN_MARKUP = re.compile(r"([\\`*\[\]<>&~$|!#]|(?<![^\W_])_|_(?![^\W_])|^[!-/:-@\[-`{-~])")
#: "1." or "1)" at the start opens an ordered list.
_ORDERED_LIST_START = re.compile(r"^(\d+)([.)])")
#: First characters that make a spreadsheet read a cell as a formula (OWASP "CSV Injection").
CSV_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def html_text(value: object) -> str:
    """``value`` as HTML text: markup characters and both quotes escaped."""
    return html.escape(str(value), quote=True)


def markdown_text(value: object) -> str:
    """``value`` as Markdown that renders to exactly that text.

    A backslash before each character that can open markup keeps raw HTML, links,
    emphasis, code spans and math from forming (Panel's Markdown then HTML-escapes the
    ``<`` and ``&`` themselves). Line breaks become spaces: a message is one paragraph.
    """
    text = " ".join(str(value).splitlines()).strip()
    return _ORDERED_LIST_START.sub(r"\1\\\2", _MARKDOWN_MARKUP.sub(r"\\\1", text))


def csv_cell(value: object) -> object:
    """A text cell a spreadsheet will not run: a leading ``'`` before a formula character.

    As OWASP recommends, a text value starting with ``=``, ``+``, ``-``, ``@``, tab or
    carriage return gets a ``'`` in front (spreadsheets show the rest as text). Numbers
    and other non-text values are returned unchanged, so ``-3`` stays a number.
    """
    if isinstance(value, str) and value.startswith(CSV_FORMULA_PREFIXES):
        return "'" + value
    return value


def csv_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text cells (and column names) went through :func:`csv_cell`."""
    safe = df.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column].dtype):
            safe[column] = safe[column].map(csv_cell)
    safe.columns = [csv_cell(c) for c in safe.columns]
    return safe


#: What a URL's password (and secret query values) shows as on pages and in logs.
SECRET_MASK = "***"
#: Query parameters whose values are secrets (cameras that take credentials in the URL).
SECRET_QUERY_KEYS = frozenset({"password", "passwd", "pwd", "pass", "token", "key", "secret"})
_USERINFO_PASSWORD = re.compile(r"(//[^/@:]*:)[^/@]*@")
#: ``scheme://user:`` then anything up to an ``@``: a password typed with ``/``, ``?`` or
#: ``#`` unencoded, which URL parsing would take for the end of the host.
_USERINFO_CUT_SHORT = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/?#@:]*:)[^@]*@")


def mask_source(source: str) -> str:
    """``source`` with the secrets of a URL replaced by :data:`SECRET_MASK`: the password
    after ``user:`` and the values of query parameters such as ``password`` or ``token``.

    What every page, message and log line shows of a source; anything that is not such a
    URL comes back unchanged, so the masked text of a file path is the path itself.
    """
    try:
        parts = urlsplit(source)
    except ValueError:  # e.g. an unclosed "[" of an IPv6 host: mask whatever is user:pass@
        return _USERINFO_PASSWORD.sub(rf"\1{SECRET_MASK}@", source)
    if "@" not in parts.netloc and _USERINFO_CUT_SHORT.match(source):
        # Masked as a password even where it might be a port and path: shown, a secret
        # must not be the part that guessed wrong.
        return mask_source(_USERINFO_CUT_SHORT.sub(rf"\1{SECRET_MASK}@", source, count=1))
    userinfo, at, host = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        parts = parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:{SECRET_MASK}@{host}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key.lower() in SECRET_QUERY_KEYS for key, _ in query):
        query = [(k, SECRET_MASK if k.lower() in SECRET_QUERY_KEYS else v) for k, v in query]
        parts = parts._replace(query=urlencode(query, safe="*"))
    return urlunsplit(parts) if parts != urlsplit(source) else source
