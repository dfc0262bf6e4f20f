"""The fast paths of ``prepare``'s pipeline against the plain library calls they replace:
the answer order (Arrow's multi-key sort against ``np.lexsort``), the timestamp text
(dictionary lookups against Arrow's ``strftime``) and the prepared-answers CSV read back."""

from __future__ import annotations

import gzip
import io

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest

from irt.engine.simulate import simulate
from irt.refresh.columns import answer_order, iso_utc, prepared_csv


def test_answer_order_equals_lexsort_with_ties_and_missing_times():
    rng = np.random.default_rng(4)
    n = 50_000
    student = rng.integers(-1, 300, n).astype(np.int32)  # -1: a null id
    item = rng.integers(0, 40, n).astype(np.int32)
    us = rng.integers(0, 50, n) * 1_000_000  # many ties on the time
    missing = rng.random(n) < 0.05
    seconds = np.where(missing, np.nan, us / 1e6)
    times = pa.array(us, pa.int64(), mask=missing)
    got = answer_order(student, times, item)
    assert np.array_equal(got, np.lexsort((item, seconds, student)))


def _strftime(us: np.ndarray, fraction: bool) -> list[str | None]:
    stamps = pa.array(us if fraction else us // 1_000_000,
                      pa.timestamp("us" if fraction else "s", tz="UTC"))
    return pc.strftime(stamps, "%Y-%m-%dT%H:%M:%SZ").to_pylist()


@pytest.mark.parametrize("fraction", [False, True])
@pytest.mark.parametrize(("low", "high"), [
    (1.7e15, 1.8e15),        # 2023-2027: the usual window
    (-5e15, 5e15),           # 1811-2128, before and after 1970: still the dictionary path
    (-3e16, 1.6e16),         # 1019-2477: a span of centuries, Arrow's own formatting
])
def test_timestamp_text_equals_arrow_strftime(fraction, low, high):
    rng = np.random.default_rng(1)
    us = rng.integers(int(low), int(high), 20_000)
    if not fraction:
        us = us // 1_000_000 * 1_000_000
    seconds = us / 1e6
    seconds[::13] = np.nan
    back = np.round(np.where(np.isnan(seconds), 0, seconds) * 1e6).astype(np.int64)
    expected = [None if np.isnan(x) else t
                for x, t in zip(seconds, _strftime(back, fraction), strict=True)]
    assert iso_utc(seconds).to_pylist() == expected


def test_timestamp_text_sorts_in_time_order_when_one_value_has_microseconds():
    seconds = np.array([1_790_000_000.0, 1_790_000_000.5, 1_790_000_001.0])
    text = iso_utc(seconds).to_pylist()
    assert text == ["2026-09-21T14:13:20.000000Z", "2026-09-21T14:13:20.500000Z",
                    "2026-09-21T14:13:21.000000Z"]
    assert sorted(text) == text
    assert iso_utc(np.array([])).to_pylist() == []


def test_prepared_csv_reads_back_to_the_same_answers():
    r = simulate(3_000, 30, 12, seed=2).responses
    rng = np.random.default_rng(2)
    seconds = 1.79e9 + rng.integers(0, 10**7, r.n_answers).astype(float)
    seconds[5] = np.nan
    held_out = rng.random(r.n_answers) < 0.2
    blob = prepared_csv(r, seconds, held_out, chunk_rows=7_000)  # several gzip members
    table = pacsv.read_csv(io.BytesIO(gzip.decompress(blob)), convert_options=pacsv.ConvertOptions(
        column_types={"student_id": pa.string(), "item_id": pa.string()}))
    assert table.column_names == ["student_id", "item_id", "correct", "answered_at", "holdout"]
    assert table.num_rows == r.n_answers
    ids = np.asarray(r.student_ids, dtype=object)
    assert table.column("student_id").to_pylist() == ids[r.student].tolist()
    assert table.column("item_id").to_pylist() == np.asarray(r.item_ids, object)[r.item].tolist()
    assert np.array_equal(table.column("correct").to_numpy(), r.correct)
    assert np.array_equal(table.column("holdout").to_numpy().astype(bool), held_out)
    when = table.column("answered_at")
    assert when.type == pa.timestamp("s", tz="UTC")
    got = pc.fill_null(when.cast(pa.int64()).cast(pa.float64()), float("nan")).to_numpy()
    assert np.array_equal(got, seconds, equal_nan=True)
