"""The online evaluation harness: no answer sees the future; metrics match their definitions."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from irt.engine.ability import eap
from irt.engine.calibrate import FitConfig, fit
from irt.engine.evaluate import auc, calibration_error, evaluate, metrics, online_predictions
from irt.engine.model import ItemModel, irf
from irt.engine.simulate import simulate
from irt.tools.cli import main


@pytest.fixture(scope="module")
def model() -> ItemModel:
    return fit(simulate(3000, 60, 30, seed=21).responses, FitConfig(compute_se=False)).model


def _log(seed: int, n_students: int, model: ItemModel, k: int = 25):
    rng = np.random.default_rng(seed)
    student = np.repeat(np.arange(n_students), k)
    pos = np.concatenate([rng.choice(model.n_items, k, replace=False) for _ in range(n_students)])
    theta = rng.standard_normal(n_students)
    y = (rng.random(student.shape[0]) < irf(theta[student], model.a[pos], model.b[pos],
                                           model.c[pos])).astype(np.int8)
    return student, pos, y


def test_no_prediction_sees_its_own_or_a_later_answer(model: ItemModel) -> None:
    student, pos, y = _log(1, 40, model)
    p = online_predictions(model, student, pos, y)
    rng = np.random.default_rng(2)
    for s in range(0, 40, 7):
        idx = np.flatnonzero(student == s)
        cut = 10
        later = idx[cut:]
        pos2, y2 = pos.copy(), y.copy()
        perm = rng.permutation(later.shape[0])
        pos2[later], y2[later] = pos[later][perm], 1 - y[later][perm]  # shuffled and flipped
        p2 = online_predictions(model, student, pos2, y2)
        np.testing.assert_array_equal(p2[idx[:cut]], p[idx[:cut]])
        assert not np.array_equal(p2[idx[cut + 1:]], p[idx[cut + 1:]])
        # An answer's own outcome never enters its prediction.
        y3 = y.copy()
        y3[idx[cut]] = 1 - y3[idx[cut]]
        p3 = online_predictions(model, student, pos, y3)
        np.testing.assert_array_equal(p3[idx[: cut + 1]], p[idx[: cut + 1]])
        assert p3[idx[cut + 1]] != p[idx[cut + 1]]


def test_each_prediction_is_the_eap_of_the_prefix(model: ItemModel) -> None:
    student, pos, y = _log(3, 5, model, k=30)
    p = online_predictions(model, student, pos, y)
    for k in range(student.shape[0]):
        s = student[k]
        prefix = np.flatnonzero((student == s) & (np.arange(student.shape[0]) < k))
        theta, _ = eap(model, pos[prefix], y[prefix])
        want = irf(theta, model.a[pos[k]], model.b[pos[k]], model.c[pos[k]])
        assert p[k] == pytest.approx(want, abs=1e-6)


def test_unknown_items_use_the_typical_item_and_do_not_update(model: ItemModel) -> None:
    student = np.zeros(4, dtype=np.int64)
    pos = np.array([3, -1, 5, 7])
    y = np.array([1, 1, 0, 1], dtype=np.int8)
    p = online_predictions(model, student, pos, y)
    theta0, _ = eap(model, np.array([], dtype=np.int64), np.array([], dtype=np.int8))
    theta1, _ = eap(model, pos[:1], y[:1])
    assert p[1] == pytest.approx(irf(theta1, np.median(model.a), np.median(model.b), 0.0))
    theta2, _ = eap(model, pos[:1], y[:1])  # the unknown answer did not count
    assert p[2] == pytest.approx(irf(theta2, model.a[5], model.b[5], 0.0), abs=1e-6)
    assert p[0] == pytest.approx(irf(theta0, model.a[3], model.b[3], 0.0), abs=1e-6)


def test_predictions_do_not_depend_on_the_chunks(model: ItemModel) -> None:
    """Whole students per chunk, the log-probability table in blocks of items: the same
    probabilities to rounding with chunks of 7 answers (students longer than a chunk, item
    blocks smaller than the items answered), the default and one chunk for everything."""
    from irt.engine.online import plain_online_predictions

    student, pos, y = _log(4, 60, model)
    pos[::11] = -1  # some unknown items
    whole = plain_online_predictions(model, student, pos, y, chunk_answers=10**6)
    for chunk in (7, 25, None):
        kw = {} if chunk is None else {"chunk_answers": chunk}
        np.testing.assert_allclose(plain_online_predictions(model, student, pos, y, **kw),
                                   whole, rtol=0, atol=1e-13)
    np.testing.assert_array_equal(online_predictions(model, student, pos, y),
                                  plain_online_predictions(model, student, pos, y))


def test_students_must_be_contiguous(model: ItemModel) -> None:
    with pytest.raises(ValueError, match="contiguous"):
        online_predictions(model, np.array([0, 1, 0]), np.array([1, 2, 3]), np.array([1, 0, 1]))


def test_auc_matches_the_pairwise_definition() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 300)
    p = np.round(rng.random(300), 1)  # many ties
    pos, neg = p[y == 1], p[y == 0]
    pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert auc(y, p) == pytest.approx(pairs / (pos.size * neg.size), abs=1e-12)
    assert auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert np.isnan(auc(np.ones(3), np.array([0.1, 0.2, 0.3])))


def test_calibration_error_and_log_loss_by_hand() -> None:
    y = np.array([1, 0, 1, 1])
    p = np.array([0.05, 0.05, 0.95, 0.75])
    # bins: [0, .1): p .05,.05 y 1,0 -> |0.1 - 1| ; [.9, 1]: .95 -> |.95 - 1|; [.7,.8): |.75-1|
    assert calibration_error(y, p) == pytest.approx((0.9 + 0.05 + 0.25) / 4)
    m = metrics(y, p)
    want = -np.mean(np.log([0.05, 0.95, 0.95, 0.75]))
    assert m["log_loss"] == pytest.approx(want)
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2))


def test_evaluation_on_known_truth_is_informative(model: ItemModel) -> None:
    student, pos, y = _log(8, 300, model)
    ev, _ = evaluate(model, student, [model.item_ids[j] for j in pos], y)
    assert ev.n_predictions == student.shape[0] and ev.n_students == 300
    assert 0.70 < ev.auc < 0.95
    assert ev.ece < 0.05
    assert abs(ev.mean_probability - ev.mean_correct) < 0.03
    assert ev.us_per_prediction > 0


def test_cli_evaluate_on_csv_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sim = simulate(2500, 50, 25, seed=31)
    r = sim.responses
    order, indptr = r.by_student()
    for name, students in (("train.csv", range(0, 2000)), ("test.csv", range(2000, 2500))):
        with (tmp_path / name).open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["user_id", "item_id", "correct", "seq"])
            for s in students:
                for t, k in enumerate(order[indptr[s]:indptr[s + 1]]):
                    w.writerow([f"u{s}", r.item_ids[r.item[k]], int(r.correct[k]), t])
    code = main(["evaluate", str(tmp_path / "train.csv"), str(tmp_path / "test.csv"),
                 "--student-column", "user_id", "--order-column", "seq", "--json"])
    assert code == 0


    report = json.loads(capsys.readouterr().out)
    assert report["n_predictions"] == 500 * 25
    assert report["n_students"] == 500
    assert report["auc"] > 0.7
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,correct\nu1,q1,1\n")
    assert main(["evaluate", str(bad), str(bad), "--student-column", "user_id",
                 "--order-column", "seq"]) == 2
    assert "seq" in capsys.readouterr().err
