"""Tests of ``irt.engine.comparison``: two banks on the same answers.

Against R mirt 1.45.1 ``anova(mod_Rasch, mod_2PL)`` on LSAT7 (``tests/data/
mirt_diagnostics_reference.json``; mirt's own estimates in both banks, so only the
likelihoods and the test are compared).  ``compare`` integrates each student's likelihood on
a local grid, mirt sums over 61 nodes on [-6, 6]: on LSAT7 the two log-likelihoods differ by
at most 9.3e-8 (measured), so 1e-9 relative on them and 1e-7 relative on the LRT's X2
(measured 2.2e-9).  Also against
:func:`irt.engine.evaluate.evaluate` run here on the answers put in order by hand.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from mirt_reference import mirt_model, num, ref, responses

from irt.engine.comparison import compare
from irt.engine.evaluate import evaluate
from irt.engine.responses import Responses


def test_lsat7_rasch_vs_2pl_matches_mirt_anova() -> None:
    want = ref("lsat7")["anova_Rasch_vs_2PL"]  # rows: mod_Rasch, mod_2PL
    c = compare(mirt_model("lsat7", "2PL"), mirt_model("lsat7", "Rasch"), responses("lsat7"),
                labels=("2pl", "rasch"), online=False)
    two, rasch = c.models
    for got, row in ((rasch, 0), (two, 1)):
        for key, col in (("log_likelihood", "logLik"), ("aic", "AIC"), ("bic", "BIC")):
            assert getattr(got.criteria, key) == pytest.approx(want[col][row], rel=1e-9)
    assert (c.lrt.small, c.lrt.big) == ("rasch", "2pl")  # ordered by nesting, not by input
    assert c.lrt.x2 == pytest.approx(num(want["X2"])[1], rel=1e-7)
    assert c.lrt.df == want["df"][1]
    assert c.lrt.p == pytest.approx(num(want["p"])[1], rel=1e-7)
    assert two.online is None and c.n_students == 1000 and c.n_answers == 5000


def test_online_metrics_follow_the_given_order() -> None:
    model = mirt_model("sat12", "2PL")
    resp = responses("sat12")
    rng = np.random.default_rng(1)
    order = rng.permutation(resp.n_answers).astype(float)
    c = compare(model, mirt_model("sat12", "Rasch"), resp, order=order)
    rows = np.lexsort((order, resp.student))
    report, _ = evaluate(model, resp.student[rows], [resp.item_ids[j] for j in
                                                      resp.item[rows].tolist()],
                         resp.correct[rows])
    got = c.models[0].online
    assert got["auc"] == pytest.approx(report.auc, rel=1e-12)
    assert got["log_loss"] == pytest.approx(report.log_loss, rel=1e-12)
    assert got["n_predictions"] == resp.n_answers
    # another order changes the online metrics, never the likelihood
    other = compare(model, mirt_model("sat12", "Rasch"), resp)
    assert other.models[0].online["log_loss"] != got["log_loss"]
    assert other.models[0].criteria.log_likelihood == c.models[0].criteria.log_likelihood


def test_only_items_both_banks_know_are_used() -> None:
    two = mirt_model("lsat7", "2PL")
    keep = np.arange(4)
    small = replace(two, item_ids=two.item_ids[:4], a=two.a[keep], b=two.b[keep],
                    c=two.c[keep], se_a=two.se_a[keep], se_b=two.se_b[keep],
                    se_c=two.se_c[keep], _index=None, _cache={})
    c = compare(two, small, responses("lsat7"), online=False)
    assert c.n_answers_left_out == 1000 and c.n_answers == 4000
    assert [m.n_items for m in c.models] == [4, 4]
    assert c.models[0].criteria.log_likelihood == pytest.approx(
        c.models[1].criteria.log_likelihood, rel=1e-12)  # the same four items
    assert c.lrt.df == 0 and c.lrt.p is None
    assert any("left out" in n for n in c.notes)
    with pytest.raises(ValueError, match="both models know"):
        compare(two, small, Responses.from_arrays(np.array([0]), np.array([0]), np.array([1]),
                                                  item_ids=("Item.5",)))


def test_priors_make_the_lrt_approximate() -> None:
    rasch = replace(mirt_model("lsat7", "Rasch"), priors={"b_normal": [0.0, 2.0]},
                    _index=None, _cache={})
    c = compare(rasch, mirt_model("lsat7", "2PL"), responses("lsat7"), online=False)
    assert c.models[0].priors and not c.models[1].priors
    assert any("priors" in n and "approximate" in n for n in c.notes)
