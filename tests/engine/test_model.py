"""Tests of ``irt.engine.model``: the item bank, its probabilities/information and the JSON
artifact.

Expected values come from the defining formulas, evaluated independently here
(``scipy.special.expit``, finite differences), never from the code under test.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
from scipy.special import expit

from irt.engine.artifact import load_model, model_from_dict
from irt.engine.model import ItemModel
from irt.errors import ModelFormatError


def make_model(model_type: str = "2pl", se_nan: bool = False) -> ItemModel:
    ids = ("Q1", "Q2", "Q3", "Q4")
    n = len(ids)
    a = {"rasch": np.ones(n), "1pl": np.full(n, 1.3)}.get(
        model_type, np.array([0.7, 1.2, 2.1, 0.9]))
    b = np.array([-1.5, 0.0, 0.8, 2.2])
    c = np.array([0.1, 0.25, 0.0, 0.3]) if model_type == "3pl" else np.zeros(n)
    se_a = np.array([0.05, 0.07, np.nan if se_nan else 0.12, 0.06])
    se_b = np.array([0.11, 0.05, 0.06, np.nan if se_nan else 0.2])
    se_c = np.array([0.02, 0.03, 0.01, 0.04]) if model_type == "3pl" else np.full(n, np.nan)
    return ItemModel(
        model_type=model_type, item_ids=ids, a=a, b=b, c=c, se_a=se_a, se_b=se_b, se_c=se_c,
        population_sd=0.8 if model_type == "rasch" else 1.0,
        quadrature={"n_points": 41, "bound": 6.0, "distribution": "normal"},
        priors={"a_lognormal": None, "b_normal": None, "c_beta": None},
        fit={"iterations": 17, "converged": True, "log_likelihood": -1234.5678901234567,
             "aic": 2485.1357802469134, "method": "MML-EM"},
        data_summary={"n_answers": 1000, "n_students": 200},
        excluded_items={"Q9": "fewer than 10 answers (3)"},
        created_at="2024-01-02T03:04:05+00:00", code_version="0.1.0", version="v7",
    )


def valid_doc(model_type: str = "2pl") -> dict:
    return json.loads(make_model(model_type).to_json())


# --------------------------------------------------------------------------- JSON round trip
@pytest.mark.parametrize("model_type", ["rasch", "1pl", "2pl", "3pl"])
def test_json_round_trip_is_exact(model_type):
    m = make_model(model_type)
    back = load_model(m.to_json())
    assert back.model_type == m.model_type
    assert back.item_ids == m.item_ids
    for name in ("a", "b", "c", "se_a", "se_b", "se_c"):
        np.testing.assert_array_equal(getattr(back, name), getattr(m, name), err_msg=name)
    assert back.population_sd == m.population_sd
    assert back.fit == m.fit
    assert back.quadrature == m.quadrature
    assert back.priors == m.priors
    assert back.data_summary == m.data_summary
    assert back.excluded_items == m.excluded_items
    assert (back.created_at, back.code_version, back.version) == (
        m.created_at, m.code_version, m.version)
    # bytes are accepted too, and a second round trip is a fixed point
    assert load_model(m.to_json().encode()).to_json() == m.to_json()


def test_to_json_never_emits_nan():
    m = make_model("2pl", se_nan=True)
    text = m.to_json()
    assert "NaN" not in text and "Infinity" not in text

    def boom(name):  # any non-finite literal would reach this
        raise AssertionError(f"non-finite literal {name} in JSON")

    doc = json.loads(text, parse_constant=boom)
    assert doc["items"]["Q3"]["se_a"] is None
    assert doc["items"]["Q4"]["se_b"] is None
    assert doc["items"]["Q1"]["se_c"] is None  # 2PL: c not estimated
    assert doc["items"]["Q1"]["se_a"] == 0.05
    back = load_model(text)
    assert math.isnan(back.se_a[2]) and math.isnan(back.se_b[3])
    assert back.se_a[0] == 0.05


def test_to_json_infinite_se_becomes_null():
    m = make_model("2pl")
    m.se_b[1] = np.inf
    doc = json.loads(m.to_json())
    assert doc["items"]["Q2"]["se_b"] is None


# --------------------------------------------------------------------------- rejection
def _raises_field(text_or_doc, field: str, in_message: str | None = None):
    with pytest.raises(ModelFormatError) as info:
        if isinstance(text_or_doc, (str, bytes)):
            load_model(text_or_doc)
        else:
            load_model(json.dumps(text_or_doc))
    assert info.value.field == field, str(info.value)
    if field:
        assert field in str(info.value)
    if in_message is not None:
        assert in_message in str(info.value)
    return info.value


def test_rejects_text_that_is_not_json():
    _raises_field("{this is not json", "", "not valid JSON")
    _raises_field("", "", "not valid JSON")
    _raises_field(b"\xff\xfe\x00garbage", "")


def test_rejects_non_object_document():
    _raises_field("[1, 2, 3]", "", "object")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_rejects_non_finite_literals(literal):
    text = make_model().to_json().replace('"b": 0.0', f'"b": {literal}', 1)
    assert literal in text
    _raises_field(text, "", literal)


def test_rejects_duplicate_key():
    text = make_model().to_json().replace('"a": 0.7,', '"a": 0.7, "a": 0.8,', 1)
    assert text.count('"a": 0.7, "a": 0.8') == 1
    _raises_field(text, "", "duplicate key 'a'")


def test_rejects_missing_schema_version():
    doc = valid_doc()
    del doc["schema_version"]
    _raises_field(doc, "schema_version", "required")


@pytest.mark.parametrize("bad", [3, 0, "1", True, 1.0])
def test_rejects_wrong_schema_version(bad):
    doc = valid_doc()
    doc["schema_version"] = bad
    _raises_field(doc, "schema_version")


def test_rejects_unknown_model_type():
    doc = valid_doc()
    doc["model_type"] = "4pl"
    _raises_field(doc, "model_type")


@pytest.mark.parametrize("a", [0, 0.0, -0.5])
def test_rejects_nonpositive_slope(a):
    doc = valid_doc()
    doc["items"]["Q2"]["a"] = a
    _raises_field(doc, "items.Q2.a")


def test_rejects_non_finite_b():
    # 1e999 is legal JSON text that Python parses to +inf: the schema must catch it.
    text = make_model().to_json().replace('"b": 0.0', '"b": 1e999', 1)
    _raises_field(text, "items.Q2.b", "finite")
    doc = valid_doc()
    doc["items"]["Q3"]["b"] = float("nan")
    with pytest.raises(ModelFormatError) as info:
        model_from_dict(doc)
    assert info.value.field == "items.Q3.b"


def test_rejects_an_integer_too_large_for_a_float_naming_the_field():
    # 1 followed by 400 zeros is legal JSON that Python parses to an int float() cannot hold
    # (OverflowError): refused as any other non-finite number, naming the field.
    text = make_model().to_json().replace('"b": 0.0', '"b": 1' + "0" * 400, 1)
    _raises_field(text, "items.Q2.b", "finite")
    doc = valid_doc("3pl")
    doc["items"]["Q1"]["se_a"] = 10**400
    _raises_field(doc, "items.Q1.se_a", "finite")


def test_rejects_b_that_is_not_a_number():
    doc = valid_doc()
    doc["items"]["Q1"]["b"] = "easy"
    _raises_field(doc, "items.Q1.b")


@pytest.mark.parametrize("c", [1, 1.0, 1.5, -0.1])
def test_rejects_c_out_of_range(c):
    doc = valid_doc("3pl")
    doc["items"]["Q4"]["c"] = c
    _raises_field(doc, "items.Q4.c")


def test_rejects_nonzero_c_on_2pl():
    doc = valid_doc("2pl")
    doc["items"]["Q3"]["c"] = 0.2
    _raises_field(doc, "items.Q3.c", "2pl")


def test_rejects_rasch_with_slope_not_one():
    doc = valid_doc("rasch")
    doc["items"]["Q2"]["a"] = 1.1
    _raises_field(doc, "items.Q2.a", "rasch")


def test_rejects_1pl_with_unequal_slopes():
    doc = valid_doc("1pl")
    doc["items"]["Q3"]["a"] = 1.31
    _raises_field(doc, "items.Q3.a", "1pl")


def test_rejects_empty_items():
    doc = valid_doc()
    doc["items"] = {}
    _raises_field(doc, "items")


def test_rejects_missing_items():
    doc = valid_doc()
    del doc["items"]
    _raises_field(doc, "items", "required")


@pytest.mark.parametrize("key", ["se_a", "se_b", "se_c"])
def test_rejects_negative_se(key):
    doc = valid_doc("3pl")
    doc["items"]["Q1"][key] = -0.01
    _raises_field(doc, f"items.Q1.{key}")


def test_rejects_population_sd_not_one_for_2pl():
    doc = valid_doc("2pl")
    doc["population"]["sd"] = 0.8
    _raises_field(doc, "population.sd")


def test_accepts_every_valid_document_unchanged():
    # The mutations above start from documents that must themselves load.
    for model_type in ("rasch", "1pl", "2pl", "3pl"):
        doc = valid_doc(model_type)
        before = copy.deepcopy(doc)
        load_model(json.dumps(doc))
        assert doc == before


# --------------------------------------------------------------------------- lookup
def test_lookup_positions_and_unknown_ids():
    m = make_model()
    pos, unknown = m.lookup(["Q3", "nope", "Q1", "Q3", "zzz"])
    np.testing.assert_array_equal(pos, [2, -1, 0, 2, -1])
    assert unknown == ["nope", "zzz"]
    pos, unknown = m.lookup([])
    assert pos.shape == (0,) and unknown == []


# --------------------------------------------------------------------------- probabilities
def reference_p(theta, a, b, c):
    return c + (1.0 - c) * expit(a * (theta - b))


@pytest.mark.parametrize("model_type", ["2pl", "3pl"])
def test_probability_shapes_and_values(model_type):
    m = make_model(model_type)
    p0 = m.probability(0.3)
    assert p0.shape == (m.n_items,)
    np.testing.assert_allclose(p0, reference_p(0.3, m.a, m.b, m.c), rtol=1e-14)
    theta = np.array([-3.0, -0.5, 0.0, 1.0, 4.0])
    p = m.probability(theta)
    assert p.shape == (theta.size, m.n_items)
    np.testing.assert_allclose(p, reference_p(theta[:, None], m.a, m.b, m.c), rtol=1e-14)
    sub = np.array([3, 1])
    ps = m.probability_by_position(theta, sub)
    assert ps.shape == (theta.size, 2)
    np.testing.assert_array_equal(ps, p[:, sub])
    assert m.probability_by_position(0.3, sub).shape == (2,)
    # P(b) = c + (1 - c) / 2 at theta = b
    for j in range(m.n_items):
        assert m.probability_by_position(m.b[j], np.array([j]))[0] == pytest.approx(
            m.c[j] + (1 - m.c[j]) / 2, abs=1e-15)


def test_probability_takes_item_ids_as_a_person_passes_them():
    """``model.probability(theta, ["Q3"])`` names items by id (it raised IndexError when it
    took positions); positions stay under ``*_by_position``."""
    m = make_model("3pl")
    theta = np.array([-1.0, 0.5])
    np.testing.assert_array_equal(m.probability(0.3, ["Q3", "Q1"]),
                                  m.probability_by_position(0.3, np.array([2, 0])))
    assert m.probability(theta, ["Q3", "Q1"]).shape == (2, 2)
    assert m.probability(0.3, "Q2").tolist() == m.probability(0.3, ["Q2"]).tolist()
    assert m.probability(0.3, np.array(["Q4"])).tolist() == m.probability(0.3, ["Q4"]).tolist()
    np.testing.assert_array_equal(m.information(theta, ("Q2",)),
                                  m.information_by_position(theta, np.array([1])))
    assert m.test_information(0.0, ["Q1", "Q2"]) == pytest.approx(
        m.information_by_position(0.0, np.array([0, 1])).sum(), rel=1e-15)
    np.testing.assert_array_equal(m.probability(0.3), m.probability_by_position(0.3))
    with pytest.raises(KeyError, match="Q9"):
        m.probability(0.0, ["Q1", "Q9"])
    with pytest.raises(TypeError, match="probability_by_position"):
        m.probability(0.0, np.array([0, 1]))
    with pytest.raises(TypeError, match="by_position"):
        m.information(0.0, [1])


def test_probability_extreme_theta_is_finite_and_bounded():
    m = make_model("3pl")
    p = m.probability(np.array([-1e6, 1e6]))
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p[0], m.c, atol=1e-15)
    np.testing.assert_allclose(p[1], 1.0, atol=1e-15)


# --------------------------------------------------------------------------- information
def test_test_information_is_sum_of_item_information():
    for model_type in ("2pl", "3pl"):
        m = make_model(model_type)
        theta = np.linspace(-4, 4, 17)
        info = m.information(theta)
        assert info.shape == (theta.size, m.n_items)
        np.testing.assert_allclose(m.test_information(theta), info.sum(axis=1), rtol=1e-14)
        assert np.ndim(m.test_information(0.5)) == 0
        assert m.test_information(0.5) == pytest.approx(m.information(0.5).sum(), rel=1e-14)
        sub = np.array([0, 2])
        np.testing.assert_allclose(m.test_information(theta, [m.item_ids[0], m.item_ids[2]]),
                                   info[:, sub].sum(axis=1), rtol=1e-14)


def _fisher_by_finite_differences(m: ItemModel, theta: np.ndarray, h: float = 1e-5):
    """Fisher information of a 0/1 item, P'(theta)^2 / (P (1 - P)); P' by central differences."""
    p = reference_p(theta[:, None], m.a, m.b, m.c)
    dp = (reference_p(theta[:, None] + h, m.a, m.b, m.c)
          - reference_p(theta[:, None] - h, m.a, m.b, m.c)) / (2 * h)
    return dp**2 / (p * (1 - p))


def test_2pl_information_is_a2pq_and_matches_fisher_information():
    m = make_model("2pl")
    theta = np.linspace(-4, 4, 33)
    info = m.information(theta)
    p = reference_p(theta[:, None], m.a, m.b, 0.0)
    np.testing.assert_allclose(info, m.a**2 * p * (1 - p), rtol=1e-12)
    np.testing.assert_allclose(info, _fisher_by_finite_differences(m, theta), rtol=1e-7)
    np.testing.assert_allclose(m.test_information(theta),
                               _fisher_by_finite_differences(m, theta).sum(axis=1), rtol=1e-7)
    # the 2PL item information peaks at theta = b with value a^2 / 4
    for j in range(m.n_items):
        assert m.information_by_position(m.b[j], np.array([j]))[0] == pytest.approx(m.a[j] ** 2 / 4,
                                                                       rel=1e-14)


def test_3pl_information_matches_fisher_information():
    m = make_model("3pl")
    theta = np.linspace(-4, 4, 33)
    np.testing.assert_allclose(m.information(theta), _fisher_by_finite_differences(m, theta),
                               rtol=1e-6)
