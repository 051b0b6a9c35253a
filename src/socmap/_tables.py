"""socmap's one table writer: HTML through pandas' Styler, Markdown through tabulate.

Every table a report or a benchmark page shows goes through :func:`html_table` or
:func:`markdown_table`. Cells are formatted to text first (by the caller's ``fmt``), then
aligned by what they hold: words left, numbers and ranges of numbers right, headers over
their column's side. ``False`` cells of a boolean column are marked ``bad`` in HTML.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from pandas.io.formats.style import Styler

__all__ = ["format_cells", "html_table", "looks_numeric", "markdown_table"]

Formatter = Callable[[Any], str]


def looks_numeric(text: str) -> bool:
    """Whether a formatted cell is a number or a range of numbers (``"1,234 – 1,300"``).

    Examples
    --------
    >>> looks_numeric("11,600 – 12,650"), looks_numeric("4.3%"), looks_numeric("EPSG:4326")
    (True, True, False)
    >>> looks_numeric("+1.2 ± 0.3"), looks_numeric("1.50×")
    (True, True)
    """
    words = text.replace(",", "")
    for mark in "–±%×":  # ranges, plus-minus, percent and ratios around the numbers
        words = words.replace(mark, " ")
    core = words.split()
    try:
        return bool(core) and all(float(c) == float(c) for c in core)
    except ValueError:
        return False


def format_cells(
    df: pd.DataFrame, fmt: Formatter = str, columns: Mapping[str, Formatter] | None = None
) -> pd.DataFrame:
    """Every cell as text: ``columns[name]`` for the columns it names, else ``fmt``.

    Examples
    --------
    >>> t = pd.DataFrame({"a": [1.23456], "b": ["x"]})
    >>> format_cells(t, columns={"a": "{:.2f}".format}).iloc[0].tolist()
    ['1.23', 'x']
    """
    per = dict(columns or {})
    return pd.DataFrame(
        {c: [per.get(str(c), fmt)(v) for v in df[c]] for c in df.columns}, index=df.index
    )


def _word_columns(text: pd.DataFrame) -> list[bool]:
    """Columns whose every (non-empty) cell is words, not numbers: they align left."""
    out = []
    for c in text.columns:
        cells = [v for v in text[c] if v not in ("", "–", "-")]
        out.append(bool(cells) and not any(looks_numeric(v) for v in cells))
    return out


def markdown_table(
    df: pd.DataFrame, fmt: Formatter = str, columns: Mapping[str, Formatter] | None = None
) -> str:
    """Write ``df`` as a GitHub-flavoured (pipe) Markdown table, without its index.

    Examples
    --------
    >>> print(markdown_table(pd.DataFrame({"site": ["a"], "MAE": [1.5]})))
    | site   |   MAE |
    |:-------|------:|
    | a      |   1.5 |
    """
    text = format_cells(df, fmt, columns).map(lambda v: v.replace("|", "\\|"))
    align = ["left" if w else "right" for w in _word_columns(text)]
    return str(
        text.to_markdown(
            index=False, tablefmt="pipe", colalign=align or None, disable_numparse=True
        )
    )


def html_table(
    df: pd.DataFrame, fmt: Formatter = str, columns: Mapping[str, Formatter] | None = None
) -> str:
    """Write ``df`` as an HTML table without its index, in a ``div.wide`` that scrolls sideways.

    Word cells get class ``txt`` (left-aligned by the page's CSS), ``False`` cells of
    boolean columns class ``bad``. The Styler's id is a hash of the table's text, so the
    same table gives the same bytes.

    Examples
    --------
    >>> out = html_table(pd.DataFrame({"site": ["a"], "ok": [False]}), lambda v: str(v))
    >>> ' txt"' in out and ' bad"' in out and out.startswith('<div class="wide">')
    True
    """
    text = format_cells(df, fmt, columns)
    words = _word_columns(text)
    classes = pd.DataFrame("", index=df.index, columns=df.columns)
    for j, c in enumerate(df.columns):
        for i, v in enumerate(df[c]):
            if isinstance(v, bool | np.bool_) and not v:
                classes.iat[i, j] = "bad"
            elif isinstance(v, str) and not looks_numeric(str(text.iat[i, j])):
                classes.iat[i, j] = "txt"
    digest = hashlib.sha1(np.asarray(pd.util.hash_pandas_object(text)).tobytes())
    digest.update("\x1f".join(map(str, df.columns)).encode())
    uuid = digest.hexdigest()[:10]
    styler = (
        Styler(text.reset_index(drop=True), uuid=uuid, cell_ids=False)
        .format(escape="html")
        .format_index(escape="html", axis=1)
        .hide(axis="index")
        .set_td_classes(classes.reset_index(drop=True))
    )
    left: list[Any] = [{"selector": f"th.col{j}", "props": "text-align: left"}
                       for j, w in enumerate(words) if w]  # fmt: skip
    styler = styler.set_table_styles(left)
    table = styler.to_html(doctype_html=False)
    return f'<div class="wide">{table}</div>'
