"""Tests of the diagnostics (``irt.engine.diagnostics`` and its parts ``fitdata``, ``itemfit``,
``globalfit``, ``localdep``) against R mirt 1.45.1 and against brute force.

Reference: ``tests/data/mirt_diagnostics_reference.json`` (values copied unchanged from
``/work/shared/datasets/<dataset>/mirt_reference.json``: mirt 1.45.1, R 4.2.2; the R call of
every value is stored there; sources in ``tests/data/SOURCE.md``), for LSAT7, LSAT6, deAyala,
SAT12 and VerbAgg under mirt's 2PL and Rasch fits.

Two kinds of comparison, named in each test:

* **mirt's estimates** (``mirt_model``): the bank holds mirt's own parameters, so only the
  statistic is compared.  With ``DiagnosticsConfig(grid="mirt")`` the formulas, quadratures
  (121-node EAP, 61-node marginal, on [-6, 6]) and conventions are mirt's, so agreement is to
  rounding: measured 1e-11 relative or better, and the tolerance is 1e-6 relative (1e-9
  absolute near 0) unless a test says why it is looser.  The default grid (+/- 6 prior SDs,
  refined abilities, per-student log-likelihood) is the same for the 2PL and differs for Rasch
  fits with sigma > 1 (``test_the_default_grid_differs_from_mirt_only_where_mirt_truncates``).
* **our estimates** (``calibrate.fit`` with ``Priors()``, i.e. maximum likelihood as mirt,
  61 quadrature nodes on [-6, 6] and mirt's TOL 1e-4): the statistics then also carry the
  difference between the two EM solutions (measured: parameters within 3.4e-3), so the
  tolerances are wider and stated with the measured differences.

Brute-force checks compute a statistic the long way (explicit loops, ``np.corrcoef``) on
sparse simulated logs, where mirt's reference cannot reach.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import replace

import numpy as np
import pytest
from mirt_reference import DATASETS, dense, mirt_model, num, ref, responses
from scipy.stats import chi2

from irt.engine.calibrate import FitConfig, Priors, Quadrature, fit
from irt.engine.diagnostics import DiagnosticsConfig, diagnose
from irt.engine.fitdata import align
from irt.engine.globalfit import likelihood_ratio_test, m2
from irt.engine.model import ItemModel, irf
from irt.engine.responses import Responses
from irt.engine.simulate import simulate

MODELS = ("2PL", "Rasch")
RTOL = 1e-6   # same statistic, same parameters: rounding only (measured <= 1e-11)
ATOL = 1e-9


@functools.cache
def diag_mirt(dataset: str, model: str, latent_in_delta: bool = True, grid: str = "mirt"):
    cfg = DiagnosticsConfig(m2_latent_in_delta=latent_in_delta, grid=grid)
    return diagnose(mirt_model(dataset, model), responses(dataset), cfg)


@functools.cache
def diag_ours(dataset: str, model: str):
    config = FitConfig(model=model.lower(), priors=Priors(), quadrature=Quadrature(61),
                       min_answers_per_item=1, compute_se=False)
    return diagnose(fit(responses(dataset), config).model, responses(dataset),
                    DiagnosticsConfig(grid="mirt"))


def close(got, want, rtol: float = RTOL, atol: float = ATOL) -> None:
    np.testing.assert_allclose(np.asarray(got, dtype=float), num(want) if isinstance(
        want, list) else want, rtol=rtol, atol=atol)


# --------------------------------------------------------------------------- mirt's estimates
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("dataset", DATASETS)
def test_item_fit_matches_mirt_itemfit(dataset: str, model: str) -> None:
    """S-X2 (``itemfit(mod)``), infit/outfit (``fit_stats='infit'``) and Zh; mirt's
    estimates."""
    d, r = diag_mirt(dataset, model), ref(dataset, model)
    assert d.data.complete and d.s_x2 is not None
    close(d.s_x2.stat, r["S_X2"]["S_X2"])
    np.testing.assert_array_equal(d.s_x2.df, num(r["S_X2"]["df.S_X2"]))
    close(d.s_x2.p, r["S_X2"]["p.S_X2"], atol=1e-12)
    close(d.s_x2.rmsea, r["S_X2"]["RMSEA.S_X2"])
    res = d.item_residuals
    for ours, theirs in ((res.outfit, "outfit"), (res.z_outfit, "z.outfit"),
                         (res.infit, "infit"), (res.z_infit, "z.infit")):
        close(ours, r["infit"][theirs])
    close(res.zh, r["Zh"]["Zh"])


@pytest.mark.parametrize("dataset", DATASETS)
def test_grouped_x2_matches_mirt(dataset: str) -> None:
    """Bock/Yen X2 with 10 EAP groups (``itemfit(mod, fit_stats='X2')``), 2PL only: mirt's
    Rasch X2 depends on how tied EAPs are split between groups (MIRT_REFERENCE.md)."""
    d, r = diag_mirt(dataset, "2PL"), ref(dataset, "2PL")
    close(d.x2.stat, r["X2"]["X2"])
    np.testing.assert_array_equal(d.x2.df, num(r["X2"]["df.X2"]))
    close(d.x2.p, r["X2"]["p.X2"], atol=1e-12)
    close(d.x2.rmsea, r["X2"]["RMSEA.X2"])


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("dataset", DATASETS)
def test_person_fit_matches_mirt_personfit(dataset: str, model: str) -> None:
    """``personfit(mod)``: the first 20 rows and ``summary(Zh)``; mirt's estimates."""
    d, r = diag_mirt(dataset, model), ref(dataset, model)["personfit"]
    p = d.person_residuals
    rows = r["first20_rows"]
    for ours, theirs in ((p.outfit, "outfit"), (p.z_outfit, "z.outfit"), (p.infit, "infit"),
                         (p.z_infit, "z.infit"), (p.zh, "Zh")):
        close(ours[:20], rows[theirs])
    s = d.person_summary()
    assert s["n_summarised"] == ref(dataset)["N"]
    for ours, theirs in (("zh_min", "Min."), ("zh_q1", "1st Qu."), ("zh_median", "Median"),
                         ("zh_mean", "Mean"), ("zh_q3", "3rd Qu."), ("zh_max", "Max.")):
        close(s[ours], r["Zh_summary"][theirs])
    close(s["zh_sd"], r["Zh_sd"])


@pytest.mark.parametrize("dataset", DATASETS)
def test_m2_2pl_matches_mirt(dataset: str) -> None:
    """``M2(mod_2PL)``: M2, df, p, RMSEA and its 90 % CI, SRMSR, TLI, CFI; mirt's estimates.
    TLI/CFI to 1e-5: mirt's independence model has EM-fitted intercepts (its M2 differs
    from the closed form logit(p) used here by up to 2e-5 relative: SAT12 5167.90 vs
    5168.00)."""
    g, r = diag_mirt(dataset, "2PL").global_fit, ref(dataset, "2PL")
    assert g.limited_information and g.reason is None and g.m2 is not None
    res, want = g.m2, r["M2"]
    close(res.m2, want["M2"][0])
    assert res.df == want["df"][0]
    close(res.p, want["p"][0], atol=1e-12)
    for ours, theirs in (("rmsea", "RMSEA"), ("rmsea_low", "RMSEA_5"),
                         ("rmsea_high", "RMSEA_95"), ("srmsr", "SRMSR")):
        close(getattr(res, ours), want[theirs][0])
    close(res.tli, want["TLI"][0], rtol=1e-5)
    close(res.cfi, want["CFI"][0], rtol=1e-5)
    close(res.m2_null, r["M2_null"]["M2"][0], rtol=5e-5)
    assert res.df_null == r["M2_null"]["df"][0]


@pytest.mark.parametrize("dataset", DATASETS)
def test_m2_rasch_matches_mirt(dataset: str) -> None:
    """``M2(mod_Rasch)``.  mirt leaves the latent variance out of Delta (but counts it in df):
    with ``m2_latent_in_delta=False`` the value is mirt's to rounding; with the variance's
    column (the default, the estimated parameter it is) M2 moves by at most 3e-5 relative
    (measured: VerbAgg 1423.115 vs 1423.155), so 1e-4 there."""
    want = ref(dataset, "Rasch")["M2"]
    mirt_way = diag_mirt(dataset, "Rasch", latent_in_delta=False).global_fit.m2
    close(mirt_way.m2, want["M2"][0])
    assert mirt_way.df == want["df"][0]
    close(mirt_way.rmsea, want["RMSEA"][0])
    close(mirt_way.srmsr, want["SRMSR"][0])
    ours = diag_mirt(dataset, "Rasch").global_fit.m2
    assert ours.df == want["df"][0]
    close(ours.m2, want["M2"][0], rtol=1e-4)
    assert ours.m2 != mirt_way.m2  # the variance column does enter


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("dataset", DATASETS)
def test_local_dependence_matches_mirt_residuals(dataset: str, model: str) -> None:
    """``residuals(mod, type='Q3')`` and ``type='LD'`` (lower triangle X2, upper signed
    Cramer's V; ``df.p=TRUE``: upper p-values); mirt's estimates."""
    d, r = diag_mirt(dataset, model), ref(dataset, model)
    J = d.data.n_items
    iu = np.triu_indices(J, 1)
    il = (iu[1], iu[0])
    q3, ld, ldp = num(r["Q3"]), num(r["LD"]), num(r["LD_df_p"])
    close(d.local.q3[iu], q3[iu])
    close(d.local.ld_x2[il], ld[il])
    close(d.local.cramers_v[iu], ld[iu])
    close(d.local.ld_p[iu], ldp[iu], atol=1e-12)
    np.testing.assert_array_equal(ldp[il], 1.0)  # df 1 per pair
    top = d.top_pairs(3)
    assert [t["ld_x2"] for t in top] == sorted(d.local.ld_x2[il], reverse=True)[:3]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("dataset", DATASETS)
def test_reliability_and_likelihood_match_mirt(dataset: str, model: str) -> None:
    """``marginal_rxx``, ``empirical_rxx(fscores(...))``, logLik/AIC/BIC; mirt's estimates.
    Marginal reliability: for the 2PL (sigma = 1) mirt's ``marginal_rxx``; for Rasch fits
    mirt weights by N(0, 1) whatever sigma (MIRT_REFERENCE.md), so the Thissen-Wainer value
    computed there with mirt's ``testinfo`` is the reference."""
    d, r = diag_mirt(dataset, model), ref(dataset, model)
    rel = r["reliability"]
    want = rel["marginal_rxx"] if model == "2PL" else rel["marginal_rxx_thissen_wainer_extra"]
    close(d.reliability.marginal, want)
    close(d.reliability.empirical, rel["empirical_rxx"])
    c = d.global_fit.criteria
    close(c.log_likelihood, r["fit"]["logLik"], rtol=1e-9)
    close(c.aic, r["fit"]["AIC"], rtol=1e-9)
    close(c.bic, r["fit"]["BIC"], rtol=1e-9)
    assert c.n_parameters == r["fit"]["n_estimated_parameters"]


def test_lsat7_lrt_matches_mirt_anova() -> None:
    """``anova(mod_Rasch, mod_2PL)`` on LSAT7: X2 12.1916, df 4, p .01598; mirt's
    estimates, log-likelihoods computed here."""
    want = ref("lsat7")["anova_Rasch_vs_2PL"]
    rasch = diag_mirt("lsat7", "Rasch").global_fit.criteria
    two = diag_mirt("lsat7", "2PL").global_fit.criteria
    test = likelihood_ratio_test("2pl", two.log_likelihood, two.n_parameters, "rasch",
                                 rasch.log_likelihood, rasch.n_parameters)
    assert (test.small, test.big) == ("rasch", "2pl")
    close(test.x2, want["X2"][1])
    assert test.df == want["df"][1]
    close(test.p, want["p"][1])


def test_rasch_and_1pl_are_one_model() -> None:
    """The 1PL with a = sigma on N(0, 1) is mirt's Rasch fit rewritten: the same M2 (both
    with their shared parameter in Delta), S-X2, log-likelihood, and an LRT with df 0.  The
    quadratures differ (nodes at x vs x / sigma), hence 1e-6."""
    rasch = mirt_model("lsat7", "Rasch")
    s = rasch.population_sd
    one = replace(rasch, model_type="1pl", a=np.full(rasch.n_items, s), b=rasch.b / s,
                  population_sd=1.0, _index=None, _cache={})
    cfg = DiagnosticsConfig(grid="mirt")
    d1, dr = diagnose(one, responses("lsat7"), cfg), diag_mirt("lsat7", "Rasch")
    close(d1.global_fit.m2.m2, dr.global_fit.m2.m2, rtol=1e-6)
    close(d1.s_x2.stat, dr.s_x2.stat, rtol=1e-6)
    close(d1.global_fit.criteria.log_likelihood, dr.global_fit.criteria.log_likelihood,
          rtol=1e-8)
    test = likelihood_ratio_test("1pl", d1.global_fit.criteria.log_likelihood, 6, "rasch",
                                 dr.global_fit.criteria.log_likelihood, 6)
    assert test.df == 0 and test.p is None and "same number of parameters" in test.note


# --------------------------------------------------------------------------- our estimates
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("dataset", DATASETS)
def test_diagnostics_of_our_ml_fit_agree_with_mirt(dataset: str, model: str) -> None:
    """Our ``calibrate.fit`` (``Priors()``, 61 nodes, TOL 1e-4), then the diagnostics, against
    mirt's fit and diagnostics.  Measured worst cases (both EMs stop at TOL 1e-4, so the
    estimates differ by up to 3.4e-3): S-X2 1.05e-2 relative (LSAT6 2PL), M2 5.1e-4, SRMSR
    3.4e-4, outfit 1.01e-3 and infit 4.9e-4 relative, z and Zh 0.042 absolute (deAyala
    Rasch, N = 19,601: z scales with sqrt(N)), Q3 3.5e-4, empirical reliability 1.2e-3
    relative, log-likelihood 5e-3 (deAyala Rasch).  Tolerances: about twice those."""
    d, r = diag_ours(dataset, model), ref(dataset, model)
    close(d.s_x2.stat, r["S_X2"]["S_X2"], rtol=2e-2)
    close(d.global_fit.m2.m2, r["M2"]["M2"][0], rtol=1e-3)
    close(d.global_fit.m2.srmsr, r["M2"]["SRMSR"][0], rtol=1e-3)
    close(d.item_residuals.outfit, r["infit"]["outfit"], rtol=2e-3)
    close(d.item_residuals.infit, r["infit"]["infit"], rtol=1e-3)
    close(d.item_residuals.z_infit, r["infit"]["z.infit"], rtol=0, atol=0.1)
    close(d.item_residuals.zh, r["Zh"]["Zh"], rtol=0, atol=0.1)
    close(d.local.q3[np.triu_indices(d.data.n_items, 1)],
          num(r["Q3"])[np.triu_indices(d.data.n_items, 1)], rtol=0, atol=1e-3)
    close(d.reliability.empirical, r["reliability"]["empirical_rxx"], rtol=3e-3)
    close(d.global_fit.criteria.log_likelihood, r["fit"]["logLik"], rtol=0, atol=0.01)


def test_lrt_of_our_fits_matches_mirt_anova() -> None:
    """Rasch vs 2PL on LSAT7 from our two ML fits: X2 within 0.01 of mirt's 12.1916 (the two
    log-likelihoods agree with mirt's within 1.5e-5 each)."""
    want = ref("lsat7")["anova_Rasch_vs_2PL"]
    a, b = diag_ours("lsat7", "Rasch").global_fit.criteria, diag_ours(
        "lsat7", "2PL").global_fit.criteria
    test = likelihood_ratio_test("rasch", a.log_likelihood, a.n_parameters, "2pl",
                                 b.log_likelihood, b.n_parameters)
    assert test.x2 == pytest.approx(want["X2"][1], abs=0.01)
    assert test.df == 4
    assert test.p == pytest.approx(want["p"][1], abs=1e-4)


# --------------------------------------------------------------------------- sparse designs
def sparse_case(n_students: int = 400, n_items: int = 40, per_student: int = 12, seed: int = 4
                ) -> tuple[ItemModel, Responses]:
    sim = simulate(n_students, n_items, per_student, seed=seed)
    nan = np.full(n_items, np.nan)
    model = ItemModel("2pl", sim.responses.item_ids, sim.a, sim.b, np.zeros(n_items), nan,
                      nan, nan)
    return model, sim.responses


def test_a_sparse_log_reports_what_it_cannot_compute() -> None:
    model, resp = sparse_case()
    d = diagnose(model, resp)
    assert not d.data.complete
    with pytest.raises(ValueError, match="incomplete"):
        _ = d.data.dense
    assert d.s_x2 is None
    g = d.global_fit
    assert not g.limited_information and g.m2 is None
    assert "too sparse" in g.reason and "30%" in g.reason  # 12 of 40 items each
    assert "AIC" in g.instead and "irt compare" in g.instead
    assert any(m.startswith("M2 not computed") for m in d.messages)
    assert any(m.startswith("S-X2 not computed") for m in d.messages)
    assert d.reliability.marginal is None and 0 < d.reliability.empirical < 1
    doc = json.loads(json.dumps(d.to_dict(), allow_nan=False))
    assert doc["global_fit"]["m2"] is None and doc["global_fit"]["limited_information"] is False
    assert "s_x2" not in doc["item_fit"]["items"][0]
    assert doc["design"]["complete"] is False and doc["design"]["n_answers"] == resp.n_answers


def test_one_missing_answer_makes_a_test_incomplete() -> None:
    full = responses("lsat7")
    keep = np.ones(full.n_answers, dtype=bool)
    keep[7] = False
    d = diagnose(mirt_model("lsat7", "2PL"), full.subset(keep))
    assert not d.data.complete and d.s_x2 is None and d.global_fit.m2 is None
    assert "99.98%" in d.global_fit.reason


def test_residual_fit_on_a_sparse_log_by_brute_force() -> None:
    """Item and person infit/outfit/Zh against loops over each item's/student's answers."""
    model, resp = sparse_case(seed=9)
    data = align(model, resp)
    d = diagnose(model, resp)
    for who, stats, key in (("item", d.item_residuals, data.item),
                            ("person", d.person_residuals, data.student)):
        for k in (0, 3, int(np.argmax(np.bincount(key)))):
            sel = key == k
            t = data.theta[data.student[sel]]
            j = data.item[sel]
            p = irf(t, data.model.a[j], data.model.b[j], data.model.c[j])
            y = data.correct[sel]
            w = p * (1 - p)
            n = sel.sum()
            assert stats.outfit[k] == pytest.approx(np.mean((y - p) ** 2 / w), rel=1e-10)
            assert stats.infit[k] == pytest.approx(np.sum((y - p) ** 2) / np.sum(w), rel=1e-10)
            ll = np.sum(np.where(y == 1, np.log(p), np.log(1 - p)))
            mu = np.sum(p * np.log(p) + (1 - p) * np.log(1 - p))
            sd = np.sqrt(np.sum(w * np.log(p / (1 - p)) ** 2))
            assert stats.zh[k] == pytest.approx((ll - mu) / sd, rel=1e-10), who
            c4 = p * (1 - p) ** 4 + (1 - p) * p**4
            q_in = min(np.sqrt(np.sum(c4 - w**2)) / np.sum(w), 1.4142)
            z = (stats.infit[k] ** (1 / 3) - 1) * 3 / q_in + q_in / 3
            assert stats.z_infit[k] == pytest.approx(z, rel=1e-10)
            assert stats.n_answers[k] == n


def test_pairwise_q3_and_ld_on_a_sparse_log_by_brute_force() -> None:
    model, resp = sparse_case(n_students=600, n_items=20, per_student=10, seed=2)
    data = align(model, resp)
    d = diagnose(model, resp, DiagnosticsConfig(min_pair_answers=30))
    x = np.linspace(-6, 6, 61)
    w = np.exp(-0.5 * x**2)
    w /= w.sum()
    checked = 0
    for a, b in [(0, 1), (2, 7), (5, 19), (11, 12)]:
        sa = set(data.student[data.item == a].tolist())
        both = sorted(sa & set(data.student[data.item == b].tolist()))
        if len(both) < 30:
            assert math.isnan(d.local.q3[a, b])
            continue
        checked += 1

        def resid(item: int, both: list[int]) -> tuple[np.ndarray, np.ndarray]:
            rows = [np.flatnonzero((data.student == s) & (data.item == item))[0] for s in both]
            y = data.correct[rows].astype(float)
            t = data.theta[both]
            return y, y - irf(t, data.model.a[item], data.model.b[item], 0.0)

        ya, ra = resid(a, both)
        yb, rb = resid(b, both)
        assert d.local.q3[a, b] == pytest.approx(np.corrcoef(ra, rb)[0, 1], rel=1e-9)
        assert d.local.q3[b, a] == d.local.q3[a, b]
        pa = irf(x, data.model.a[a], data.model.b[a], 0.0)
        pb = irf(x, data.model.a[b], data.model.b[b], 0.0)
        n = len(both)
        obs = np.array([[np.sum((ya == u) & (yb == v)) for v in (0, 1)] for u in (0, 1)])
        exp = np.array([[n * np.sum(w * (pa if u else 1 - pa) * (pb if v else 1 - pb))
                         for v in (0, 1)] for u in (0, 1)])
        x2 = np.sum((obs - exp) ** 2 / exp)
        assert d.local.ld_x2[a, b] == pytest.approx(x2, rel=1e-9)
        assert d.local.ld_p[a, b] == pytest.approx(chi2.sf(x2, 1), rel=1e-9)
        assert d.local.n[a, b] == n
    assert checked >= 2


def test_grouped_x2_by_brute_force() -> None:
    """mirt's rule on a sparse log: each item's students sorted by EAP (ties in student
    order), floor(n / 10) per group, the remainder split between the first (half, rounded
    down) and the last group; groups of one student are skipped."""
    model, resp = sparse_case(n_students=537, n_items=15, per_student=6, seed=6)
    data = align(model, resp)
    d = diagnose(model, resp)
    for item in range(data.n_items):
        sel = np.flatnonzero(data.item == item)
        s = data.student[sel]
        order = np.argsort(data.theta[s], kind="stable")
        s, y = s[order], data.correct[sel][order].astype(float)
        n = s.shape[0]
        groups = [1] * ((n % 10) // 2) + [g for g in range(1, 11) for _ in range(n // 10)]
        groups += [10] * (n - len(groups))
        groups = np.array(groups)
        x2, used = 0.0, 0
        for g in range(1, 11):
            m = groups == g
            if m.sum() <= 1:
                continue
            used += 1
            t = data.theta[s[m]].mean()
            p = irf(t, data.model.a[item], data.model.b[item], 0.0)
            x2 += (y[m].sum() - m.sum() * p) ** 2 / (m.sum() * p * (1 - p))
        if n < 20:
            assert math.isnan(d.x2.stat[item])
            continue
        assert d.x2.stat[item] == pytest.approx(x2, rel=1e-10)
        assert d.x2.df[item] == used - 2


def test_unknown_items_and_repeated_answers() -> None:
    model = mirt_model("lsat7", "2PL")
    X = dense("lsat7")[:50]
    extra = np.c_[X, np.ones((50, 1))]
    resp = Responses.from_dense(extra, item_ids=[*model.item_ids, "new"])
    d = diagnose(model, resp)
    assert d.data.n_unknown_answers == 50 and d.data.complete and d.data.n_items == 5
    assert any("unknown to the model" in m for m in d.messages)
    twice = Responses.from_arrays(np.array([0, 0]), np.array([1, 1]), np.array([1, 0]),
                                  item_ids=model.item_ids)
    with pytest.raises(ValueError, match="more than once"):
        diagnose(model, twice)
    nowhere = Responses.from_arrays(np.array([0]), np.array([0]), np.array([1]),
                                    item_ids=("zz",))
    with pytest.raises(ValueError, match="no answer"):
        diagnose(model, nowhere)


def test_m2_refuses_too_few_items() -> None:
    model = mirt_model("lsat7", "2PL")
    X = dense("lsat7")[:, :2].astype(np.int8)
    sub = replace(model, item_ids=model.item_ids[:2], a=model.a[:2], b=model.b[:2],
                  c=model.c[:2], se_a=model.se_a[:2], se_b=model.se_b[:2],
                  se_c=model.se_c[:2], _index=None, _cache={})
    with pytest.raises(ValueError, match="too few items"):
        m2(sub, X)
    d = diagnose(sub, Responses.from_dense(X, item_ids=sub.item_ids))
    assert d.global_fit.m2 is None and "too few items" in d.global_fit.reason


def test_m2_refuses_one_student() -> None:
    """M2's RMSEA divides by N - 1: one student's answers leave M2 out with the reason."""
    model = mirt_model("lsat7", "2PL")
    X = dense("lsat7")[:1].astype(np.int8)
    with pytest.raises(ValueError, match="at least two students"):
        m2(model, X)
    d = diagnose(model, Responses.from_dense(X, item_ids=model.item_ids))
    assert d.global_fit.m2 is None and "too few students" in d.global_fit.reason
    assert d.global_fit.criteria.n_students == 1


def test_pairs_are_ranked_by_q3_on_a_sparse_log_and_by_ld_x2_on_a_test() -> None:
    model, resp = sparse_case(n_students=600, n_items=20, per_student=10, seed=2)
    sparse = diagnose(model, resp)
    assert sparse.pairs_ranked_by == "q3_minus_mean"
    q = [p["q3"] for p in sparse.top_pairs(5)]
    assert q == sorted(q, reverse=True) and len(q) == 5
    i, j = sparse.local.pairs()
    assert q[0] == np.nanmax(sparse.local.q3[i, j])
    assert diag_mirt("sat12", "2PL").pairs_ranked_by == "ld_x2"


def test_a_pair_without_gamma_has_no_ld_x2() -> None:
    """mirt's rule: a 2 x 2 table with n00 n11 + n01 n10 = 0 (here everyone got items 1 and 2
    right) has no gamma, so no LD-X2 nor Cramer's V; the other pairs keep theirs."""
    X = dense("lsat7")
    X = X[(X[:, 0] == 1) & (X[:, 1] == 1)]
    d = diagnose(mirt_model("lsat7", "2PL"), Responses.from_dense(
        X, item_ids=mirt_model("lsat7", "2PL").item_ids))
    assert math.isnan(d.local.ld_x2[0, 1]) and math.isnan(d.local.cramers_v[0, 1])
    assert np.isfinite(d.local.q3[0, 1])  # the residuals 1 - P(theta) still vary
    assert np.isfinite(d.local.ld_x2[2, 3]) and np.isfinite(d.local.cramers_v[2, 3])


@pytest.mark.parametrize("model_type", ["1pl", "2pl", "3pl"])
def test_m2_by_brute_force_over_all_patterns(model_type: str) -> None:
    """M2 of a 6-item test against an independent computation: the margins and their
    covariance from the exact distribution of all 64 answer patterns (61-node quadrature),
    Delta by central differences in (a, b, c), and mirt's QR complement.  Checks the
    analytic Delta of each model type, the 3PL's guessing included (mirt's reference has no
    3PL)."""
    sim = simulate(800, 6, model="3pl" if model_type == "3pl" else "2pl", seed=12)
    X = np.zeros((800, 6), dtype=np.int8)
    X[sim.responses.student, sim.responses.item] = sim.responses.correct
    nan = np.full(6, np.nan)
    a = np.full(6, 1.3) if model_type == "1pl" else sim.a
    c = sim.c if model_type == "3pl" else np.zeros(6)
    model = ItemModel(model_type, sim.responses.item_ids, a, sim.b, c, nan, nan, nan)
    x = np.linspace(-6, 6, 61)
    w = np.exp(-0.5 * x**2)
    w /= w.sum()
    patterns = np.array(np.meshgrid(*[[0, 1]] * 6, indexing="ij")).reshape(6, -1).T
    iu, ju = np.triu_indices(6, 1)

    def moments(pat: np.ndarray) -> np.ndarray:
        return np.c_[pat, pat[:, iu] * pat[:, ju]]

    def margins(a_: np.ndarray, b_: np.ndarray, c_: np.ndarray) -> tuple[np.ndarray, ...]:
        P = c_[:, None] + (1 - c_[:, None]) / (1 + np.exp(-a_[:, None] * (x - b_[:, None])))
        like = np.prod(np.where(patterns[:, :, None] == 1, P[None], 1 - P[None]), axis=1)
        prob = like @ w
        mom = moments(patterns)
        return prob @ mom, prob, mom

    pi, prob, mom = margins(a, sim.b, c)
    Xi = (mom - pi).T @ ((mom - pi) * prob[:, None])
    free = {"1pl": ["b"], "2pl": ["a", "b"], "3pl": ["a", "b", "c"]}[model_type]
    cols = []
    h = 1e-5
    for name in free:
        for j in range(6):
            up = {"a": a.copy(), "b": sim.b.copy(), "c": c.copy()}
            down = {k: v.copy() for k, v in up.items()}
            up[name][j] += h
            down[name][j] -= h
            cols.append((margins(up["a"], up["b"], up["c"])[0]
                         - margins(down["a"], down["b"], down["c"])[0]) / (2 * h))
    if model_type == "1pl":  # the common slope
        cols.append((margins(a + h, sim.b, c)[0] - margins(a - h, sim.b, c)[0]) / (2 * h))
    delta = np.array(cols).T
    Q, _ = np.linalg.qr(delta, mode="complete")
    Dc = Q[:, delta.shape[1]:]
    e = moments(X.astype(float)).mean(axis=0) - pi
    want = 800 * e @ Dc @ np.linalg.solve(Dc.T @ Xi @ Dc, Dc.T @ e)
    got = m2(model, X)
    assert got.df == 21 - delta.shape[1]
    assert got.m2 == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("dataset", DATASETS)
def test_the_default_grid_differs_from_mirt_only_where_mirt_truncates(dataset: str) -> None:
    """The default grid spans +/- 6 prior SDs (mirt: +/- 6 logits) and refines abilities and
    the log-likelihood.  2PL (sigma = 1): mirt's values still, to 1e-5 (measured: at most
    2.2e-6 on a person's Zh, the refinement of extreme patterns; log-likelihood 3.4e-6).
    Rasch: the same within 1e-5 for sigma <= 1 (LSAT7 sigma = 1.01, LSAT6 0.76, SAT12 0.91);
    for deAyala (1.44) and VerbAgg (1.38) mirt's grid cuts the prior at 4.2 and 4.3 SDs and
    the values move by up to 1.3e-2 relative (LD-X2) and 9e-3 in a z (measured)."""
    for model in MODELS:
        ours, theirs = diag_mirt(dataset, model, grid="prior_sd"), diag_mirt(dataset, model)
        sigma = ours.data.model.population_sd
        tol = 1e-5 if sigma <= 1.02 else 2e-2
        for a, b in ((ours.s_x2.stat, theirs.s_x2.stat), (ours.global_fit.m2.m2,
                                                          theirs.global_fit.m2.m2),
                     (ours.item_residuals.outfit, theirs.item_residuals.outfit),
                     (ours.person_residuals.zh, theirs.person_residuals.zh),
                     (ours.local.ld_x2, theirs.local.ld_x2), (ours.reliability.empirical,
                                                              theirs.reliability.empirical)):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
        assert ours.global_fit.criteria.log_likelihood == pytest.approx(
            theirs.global_fit.criteria.log_likelihood, abs=1e-5 if sigma <= 1.02 else 0.05)
        if sigma > 1.02:  # the truncation shows
            assert ours.local.ld_x2[0, 1] != pytest.approx(theirs.local.ld_x2[0, 1], rel=1e-6)


def test_a_wide_rasch_prior_is_not_cut_off() -> None:
    """A Rasch bank with sigma = 2.5 (as ASSISTments 2009's): a student right on 40 items of
    difficulty 5 has an EAP above 6 logits, which mirt's [-6, 6] grid cannot give; the
    log-likelihood equals scipy's adaptive quadrature of the exact integral per student."""
    from scipy.integrate import quad
    from scipy.stats import norm

    n = 40
    nan = np.full(n, np.nan)
    bank = ItemModel("rasch", tuple(f"q{k}" for k in range(n)), np.ones(n),
                     np.linspace(2, 8, n), np.zeros(n), nan, nan, nan, population_sd=2.5)
    rng = np.random.default_rng(3)
    X = np.vstack([np.ones(n), (rng.random((3, n)) < 0.4)])
    resp = Responses.from_dense(X, item_ids=bank.item_ids)
    wide = diagnose(bank, resp)
    cut = diagnose(bank, resp, DiagnosticsConfig(grid="mirt"))
    assert wide.data.theta[0] > 6.5 and cut.data.theta[0] < 6.0
    exact = 0.0
    for row in X:
        def f(t: float, row: np.ndarray = row) -> float:
            p = 1 / (1 + np.exp(-(t - bank.b)))
            return float(np.exp(np.sum(np.where(row == 1, np.log(p), np.log1p(-p))))
                         * norm.pdf(t, 0, 2.5))
        exact += math.log(quad(f, -30, 30, points=[0, 5, 8], limit=200, epsabs=0,
                               epsrel=1e-12)[0])
    assert wide.global_fit.criteria.log_likelihood == pytest.approx(exact, rel=1e-9)
    assert abs(cut.global_fit.criteria.log_likelihood - exact) > 0.1


def test_chi2_sf_is_scipy_stats_without_importing_it() -> None:
    """The fit statistics' chi-squared tail equals ``scipy.stats.chi2.sf`` bit for bit (at 0,
    below it, at infinity, nan, df <= 0), and the report's diagnostics of a sparse log do not
    import ``scipy.stats`` or ``scipy.optimize`` (half a second of each refresh; M2, on
    complete designs only, imports them)."""
    from fresh_python import loaded_modules

    from irt.engine.itemfit import chi2_sf

    x = np.array([-1.0, 0.0, 1e-300, 0.5, 3.0, 41.7, 100.0, 1e4, np.inf, np.nan])
    for df in (1, 2.0, 3.5, 17, 400, 0, -2):
        np.testing.assert_array_equal(chi2_sf(x, df), chi2.sf(x, df))
    df = np.array([1, 4, 9, 0, 2, 30, 1, 3, 5, 7])
    np.testing.assert_array_equal(chi2_sf(x, df), chi2.sf(x, df))
    loaded = loaded_modules("from irt.engine.diagnostics import diagnose\n"
                            "from irt.engine.calibrate import FitConfig, fit\n"
                            "from irt.engine.simulate import simulate\n"
                            "r = simulate(300, 40, 10, seed=3).responses\n"
                            "d = diagnose(fit(r, FitConfig(compute_se=False)).model, r)\n"
                            "assert d.x2 is not None and d.local is not None\n")
    assert "irt.engine.diagnostics" in loaded
    assert "scipy.stats" not in loaded and "scipy.optimize" not in loaded


@pytest.mark.parametrize("model_type", ["2pl", "3pl"])
def test_adaptive_loglik_does_not_depend_on_its_chunks(model_type: str, monkeypatch) -> None:
    """The adaptive marginal log-likelihood works in chunks of whole students: the same
    value bit for bit with chunks smaller than one student's answers and with one chunk
    for all (each student's integral is computed on its own)."""
    from irt.engine import fitdata

    r = simulate(300, 400, 300, seed=8, model=model_type).responses
    model = fit(r, FitConfig(model=model_type, compute_se=False)).model
    data = align(model, r)
    local = []  # students refined on local grids (narrow posteriors: 300 answers each)
    real = fitdata._local_pass
    monkeypatch.setattr(fitdata, "_local_pass",
                        lambda *a, **k: local.append(a[4].shape[0]) or real(*a, **k))

    def loglik() -> float:
        return fitdata.marginal_loglik(data.model, data.student, data.item, data.correct,
                                       data.n_students)

    values = set()
    for chunk in (50, 700, 10**7):
        monkeypatch.setattr(fitdata, "ANSWER_CHUNK", chunk)
        values.add(loglik())
    assert len(values) == 1 and math.isfinite(values.pop())
    assert local and min(local) >= 10
