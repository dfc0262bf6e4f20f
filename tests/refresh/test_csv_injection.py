"""Issue #17 item 12: prepared.csv.gz neutralises ids a spreadsheet would run as formulas
(OWASP CSV injection: prefix ``'``); model.json keeps ids verbatim (JSON, not a sheet)."""

from __future__ import annotations

import csv
import gzip
import io
from types import SimpleNamespace

import numpy as np

from irt.refresh.columns import prepared_csv

HOSTILE = ['=HYPERLINK("http://x","y")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tq",
           "'quoted", "plain"]


def test_formula_ids_are_prefixed_with_a_quote_in_the_prepared_csv():
    n = len(HOSTILE)
    responses = SimpleNamespace(student_ids=HOSTILE, item_ids=HOSTILE, n_answers=n,
                                student=np.arange(n), item=np.arange(n)[::-1],
                                correct=np.ones(n, np.int8))
    raw = gzip.decompress(prepared_csv(responses, None, np.zeros(n, bool)))
    rows = list(csv.DictReader(io.StringIO(raw.decode())))
    for row in rows:
        for col in ("student_id", "item_id"):
            assert not row[col].startswith(("=", "+", "-", "@", "\t", "\r"))
    assert [r["student_id"] for r in rows] == ["'" + h for h in HOSTILE[:-1]] + ["plain"]
    # one leading quote stripped gives the id back
    assert [r["item_id"].removeprefix("'") if r["item_id"] != "plain" else "plain"
            for r in rows] == HOSTILE[::-1]
