"""What the dashboard writes into a file an analyst opens in a spreadsheet."""

from __future__ import annotations

import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells cannot run as spreadsheet formulas (OWASP's CSV-injection rule):
    a cell starting with ``= + - @``, a tab or a carriage return gets a leading ``'``. Numbers
    (a negative score) are not text and stay as they are."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(
                lambda v: f"'{v}" if isinstance(v, str) and v.startswith(FORMULA_START) else v)
    return out
