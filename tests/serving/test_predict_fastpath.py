"""``predict``'s fast paths give exactly what the detailed paths give.

* ``irt.serving.body.parse_json``: orjson plus a colon count stands in for the standard library
with a
  duplicate-key hook; every document must be accepted or refused exactly as the standard
  library path does (duplicates at any depth, keys that differ only by escapes, colons
  inside strings, numbers orjson reads differently, encodings orjson refuses).
* ``irt.serving``: plain requests are checked and looked up in a few C-speed passes; the
  answer must equal the detailed path's (``parse_predict`` and the per-field checks) for
  every request, valid or not, including the error and the field it names - for a plain
  model and for a learning-aware one (``irt.serving.plain.fast_single``, shared).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import random
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from learning_models import big_model

from irt import serving
from irt.engine.ability import eap
from irt.engine.artifact import model_from_dict
from irt.engine.calibrate import FitConfig, fit
from irt.engine.model import ItemModel
from irt.engine.simulate import simulate
from irt.serving import body, learning, plain

MAIN = Path(__file__).resolve().parents[2] / "functions" / "predict" / "main.py"


@pytest.fixture(scope="module")
def main(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``functions/predict/main.py`` as a module (no model: it logs that and serves 503)."""
    mp = pytest.MonkeyPatch()
    mp.delenv("MODEL_BUCKET", raising=False)
    mp.setenv("MODEL_DIR", str(tmp_path_factory.mktemp("no-model")))
    spec = importlib.util.spec_from_file_location("predict_main_under_test", MAIN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    finally:
        mp.undo()
    return module


def strict_stdlib(raw: bytes) -> Any:
    """The reference: the standard library with the duplicate-key and constant hooks."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(items)
        if len(out) != len(items):
            raise ValueError("duplicate key")
        return out

    def constant(name: str) -> Any:
        raise ValueError(name)

    return json.loads(raw, object_pairs_hook=pairs, parse_constant=constant)


def outcome(func: Any, raw: bytes) -> tuple[str, Any]:
    try:
        value = func(raw)
    except (ValueError, RecursionError):
        return ("refused", None)
    return ("ok", json.dumps(value))  # dumps tells an int from a float, -0.0 from 0.0


@pytest.mark.parametrize("raw", [
    b'{"a": 1, "a": 2}',
    b'{"responses": [], "responses": []}',
    b'{"responses": [{"item_id": "q1", "correct": true, "correct": false}]}',
    b'{"students": [{"responses": [], "items": [], "items": []}]}',
    b'{"x": {"y": {"z": 1, "z": 1}}}',
    b'[{"a": 1}, {"b": 1, "b": 1}]',
    b'{"a": 1, "\\u0061": 2}',  # the same key, once escaped
    b'{"\\u0061": 1, "a": 2}',
    b'{"a\\"": 1, "a\\u0022": 2}',
    b'{"a:b": 1, "a:b": 2}',  # a colon inside the duplicated key
    b'{"t": "10:00:00", "t": "11:00:00"}',  # colons inside the dropped values
    b'{"a": {"b:c": "d:e"}, "a": 1}',
    b'{"": 1, "": 2}',
])
def test_duplicate_keys_are_refused(main: Any, raw: bytes) -> None:
    with pytest.raises(ValueError):
        strict_stdlib(raw)
    with pytest.raises(ValueError, match="duplicate key"):
        body.parse_json(raw)


@pytest.mark.parametrize("raw", [
    b'{"responses": [{"item_id": "q1", "correct": true,'
    b' "answered_at": "2026-11-28T10:00:00Z"}]}',  # colons inside strings, no duplicate
    b'{"a": 1, "\\u0062": 2}',  # an escape, keys distinct
    b'{"a:": ":", ":b": {"c": "::"}}',
    b'{"big": 123456789012345678901234567890}',  # orjson would read a float
    b'{"k": 18446744073709551616}',
    b'{"k": -9223372036854775809}',
    b'{"n": 1e400}',  # the standard library reads inf (a field check refuses it later)
    b'{"s": "\\ud800"}',  # a lone surrogate: orjson refuses, the standard library reads it
    b'\xef\xbb\xbf{"a": 1}',  # a byte-order mark
    '{"a": "\u00e9:\u4e2d"}'.encode(),
    b' \t\r\n{"a": [1, 2.5, -0.0, true, false, null, "x"]}\n',
    b"[" * 300 + b"]" * 300,  # deeper than orjson writes back, within the stdlib's reach
])
def test_valid_documents_read_as_the_standard_library_reads_them(main: Any, raw: bytes
                                                                 ) -> None:
    assert outcome(body.parse_json, raw) == outcome(strict_stdlib, raw)
    assert outcome(body.parse_json, raw)[0] == "ok"


@pytest.mark.parametrize("raw", ['{"a": 1}'.encode("utf-16"), '{"a": 1}'.encode("utf-32"),
                                 b'{"s": "\xed\xa0\x80"}', b'{"s": "a\xed\xbf\xbfb"}'])
def test_only_utf8_text_is_read(main: Any, raw: bytes) -> None:
    # The standard library decodes bytes by guessing UTF-16/32 and with "surrogatepass" (an
    # encoded surrogate is not UTF-8); parse_json reads UTF-8 only (RFC 8259 section 8.1).
    assert outcome(strict_stdlib, raw)[0] == "ok"
    with pytest.raises(UnicodeDecodeError):
        body.parse_json(raw)


def test_plain_documents_skip_the_standard_library(main: Any, monkeypatch) -> None:
    """The common body never reaches the slow parser; a duplicate always does (and is
    refused there, with the standard library's message)."""
    calls = []
    real = body.json.loads
    monkeypatch.setattr(body.json, "loads", lambda *a, **k: calls.append(a) or real(*a, **k))
    plain = (b'{"responses": [{"item_id": "q1", "correct": true}, {"item_id": "q2", '
             b'"correct": 0}], "items": ["q3", "a:b"], "method": "EAP"}')
    assert body.parse_json(plain) == real(plain)
    assert calls == []
    with pytest.raises(ValueError, match="duplicate key 'correct'"):
        body.parse_json(b'{"responses": [{"item_id": "q1", "correct": 1, "correct": 0}]}')
    assert len(calls) == 1


@pytest.mark.parametrize("raw", [b'{"a": NaN}', b'{"a": Infinity}', b"[-Infinity]", b"{",
                                 b'{"a": 1,}', b"[1] x", b"\xff", b"[" * 5000 + b"]" * 5000])
def test_invalid_documents_are_refused(main: Any, raw: bytes) -> None:
    assert outcome(body.parse_json, raw) == ("refused", None)


def random_document(rng: random.Random, depth: int = 0) -> str:
    """Random JSON text: objects with repeated and escaped keys, colons, numbers."""
    keys = ["a", "b", "a:b", ":", "\\u0061", "\\u003a", "\\\"", "item_id", "\\n", "\u00e9"]
    r = rng.random()
    if depth < 4 and r < 0.35:
        n = rng.randint(0, 4)
        members = [f'"{rng.choice(keys)}": {random_document(rng, depth + 1)}' for _ in range(n)]
        return "{" + ", ".join(members) + "}"
    if depth < 4 and r < 0.55:
        return "[" + ",".join(random_document(rng, depth + 1)
                              for _ in range(rng.randint(0, 3))) + "]"
    return rng.choice([
        '"x"', '"10:00"', '"\\u003a"', '"a\\\\u"', "1", "-0", "2.5", "1e400", "true", "null",
        str(rng.choice([7, 2**63, 2**64, -(2**63) - 1, 10**25])), '"\\ud83d\\ude00"', "NaN"])


def test_random_documents_agree_with_the_standard_library(main: Any) -> None:
    rng = random.Random(20261128)
    seen = {"ok": 0, "refused": 0}
    for _ in range(4000):
        raw = random_document(rng).encode()
        got = outcome(body.parse_json, raw)
        assert got == outcome(strict_stdlib, raw), raw
        seen[got[0]] += 1
    assert min(seen.values()) > 500  # both outcomes well exercised


# --------------------------------------------------------------------------- serving
@pytest.fixture(scope="module")
def models() -> list[ItemModel]:
    """A 2PL model, the same items as a 3PL (every c > 0), and one whose ids break the
    request id rules (a 300-character id: the fast path must stand aside)."""
    base = fit(simulate(1500, 30, 20, seed=11).responses, FitConfig(compute_se=False)).model
    doc = json.loads(base.to_json())
    for spec in doc["items"].values():
        spec["c"] = 0.2
    doc["model_type"] = "3pl"
    three = model_from_dict(doc)
    doc = json.loads(base.to_json())
    doc["items"]["x" * 300] = doc["items"].pop("q0")
    return [base, three, model_from_dict(doc)]


def detailed(monkeypatch: pytest.MonkeyPatch, func: Any, *args: Any) -> Any:
    """``func(*args)`` with the fast path switched off."""
    with monkeypatch.context() as m:
        m.setattr(plain, "_fast_predict", lambda *a: None)
        return run(func, *args)


def run(func: Any, *args: Any) -> Any:
    try:
        return ("ok", json.dumps(func(*copy.deepcopy(args))))
    except serving.RequestError as err:
        return ("error", err.status, err.code, err.field, err.message, err.log_field)


class Payloads:
    """Random predict requests, mostly valid, with every kind of departure."""

    def __init__(self, model: ItemModel, seed: int, noise: float) -> None:
        self.rng = random.Random(seed)
        self.ids = [*model.item_ids[:12], model.item_ids[-1]]
        self.noise = noise

    def odd(self, p: float) -> bool:
        return self.rng.random() < p * self.noise

    def item(self) -> Any:
        if self.odd(0.1):
            return self.rng.choice(["zz", "new", "x" * 300, "", " ", 5, None, True, ["q1"],
                                    {"a": 1}, 1.5])
        if self.odd(0.1):  # padded with whitespace, which both paths trim
            return self.rng.choice([" {}", "{} ", "\t{}\n", " {} "]).format(
                self.rng.choice([*self.ids, "new"]))
        return self.rng.choice(self.ids)

    def answer(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"item_id": self.item(), "correct": self.rng.choice(
            [True, False, 0, 1] + ([2, 1.0, "1", None] if self.odd(0.5) else []))}
        if self.odd(0.05):
            answer["answered_at"] = self.rng.choice(["2026-11-28T10:00:00Z", 1.7e9, "x"])
        if self.odd(0.02):
            answer["extra"] = 1
        if self.odd(0.02):
            del answer["item_id"]
        return answer

    def student(self, batch: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if batch and self.rng.random() < 0.7:
            out["student_id"] = self.rng.choice(["a", "b", "c"] + (
                ["", " ", 5, "s" * 300] if self.odd(0.3) else []))
        if not self.odd(0.02):
            out["responses"] = [self.answer() for _ in range(self.rng.choice([0, 1, 3, 6]))]
        if self.rng.random() < 0.8:
            out["items"] = [self.item() for _ in range(self.rng.choice([0, 1, 4, 9]))]
        if self.odd(0.02):
            out[self.rng.choice(["items", "responses"])] = self.rng.choice(["q1", {}, 5])
        if self.odd(0.02):
            out["other"] = 1
        if not batch and self.rng.random() < 0.3:
            out["method"] = self.rng.choice(["EAP", "MAP"] + (["MLE", 1] if self.odd(1) else []))
        return out

    def payload(self) -> Any:
        if self.rng.random() < 0.5:
            return self.student(batch=False)
        body: dict[str, Any] = {"students": [self.student(batch=True)
                                             for _ in range(self.rng.choice([1, 2, 5]))]}
        if self.rng.random() < 0.3:
            body["method"] = self.rng.choice(["EAP", "MAP"])
        if self.odd(0.03):
            body["responses"] = []
        if self.odd(0.03):
            body["students"] = self.rng.choice([[], "x", [1], [None]])
        return body


LIMITS = [serving.Limits(), serving.Limits(max_responses=4, max_items=3, max_students=2,
                                           max_id_length=8)]


@pytest.mark.parametrize("noise", [0.05, 1.0])
def test_fast_path_answers_as_the_detailed_path(monkeypatch: pytest.MonkeyPatch,
                                                models: list[ItemModel], noise: float) -> None:
    answered_fast = 0
    original = plain._fast_predict

    def counting(*args: Any) -> Any:
        nonlocal answered_fast
        answer = original(*args)
        answered_fast += answer is not None
        return answer

    monkeypatch.setattr(plain, "_fast_predict", counting)
    for m, model in enumerate(models):
        for limits in LIMITS:
            gen = Payloads(model, seed=m * 10 + int(noise * 100), noise=noise)
            for _ in range(400):
                payload = gen.payload()
                got = run(serving.predict, model, payload, limits, "v1")
                want = detailed(monkeypatch, serving.predict, model, payload, limits, "v1")
                assert got == want, payload
    assert answered_fast > 200  # the fast path did answer


def test_fast_path_keeps_unknown_and_repeated_ids_in_order(models: list[ItemModel]) -> None:
    model = models[0]
    body = {"responses": [{"item_id": "new", "correct": 1}, {"item_id": "q1", "correct": 0}],
            "items": ["q2", "gone", "q2", "new", "q3", "gone"]}
    out = serving.predict(model, body, serving.Limits(), "v1")
    assert list(out["probabilities"]) == ["q2", "q3"]
    assert out["unknown_items"] == ["new", "gone"]
    pos, y = model.lookup(["q1"])[0], np.array([0], dtype=np.int8)
    theta, se = eap(model, pos, y)
    assert out["ability"] == {"theta": round(theta, 6), "se": round(se, 6), "method": "EAP",
                              "n_answers": 1}
    want = np.round(model.probability(theta, ["q2", "q3"]), 6).tolist()
    assert list(out["probabilities"].values()) == want


def test_padded_ids_are_trimmed_as_the_answer_log_sql_trims_them(monkeypatch,
                                                               models: list[ItemModel]) -> None:
    """' q1 ' is q1: it counts as an answer to q1 (a retry as 'q1' is a second attempt),
    a requested ' q2' is answered as q2, single and batch, fast path or not."""
    model = models[0]
    padded = {"responses": [{"item_id": " q1 ", "correct": 1}, {"item_id": "q1", "correct": 0},
                            {"item_id": "\tq4", "correct": 0}, {"item_id": " new", "correct": 1}],
              "items": [" q2", "q3", "gone "]}
    plain = {"responses": [{"item_id": "q1", "correct": 1}, {"item_id": "q4", "correct": 0},
                           {"item_id": "new", "correct": 1}],
             "items": ["q2", "q3", "gone"]}
    limits = serving.Limits()
    want = serving.predict(model, plain, limits, "v1")
    assert want["ability"]["n_answers"] == 2 and want["unknown_items"] == ["new", "gone"]
    assert serving.predict(model, padded, limits, "v1") == want
    assert detailed(monkeypatch, serving.predict, model, padded, limits, "v1") == run(
        serving.predict, model, plain, limits, "v1")
    batch = serving.predict(model, {"students": [padded, plain]}, limits, "v1")["results"]
    assert batch[0] == batch[1]
    for students in ([{**plain, "student_id": " s1 "}],
                     [{**plain, "student_id": " s1 "}, {**padded, "student_id": "s2"}]):
        out = serving.predict(model, {"students": students}, limits, "v1")["results"]
        assert out[0]["student_id"] == " s1 "  # student ids are echoed as sent
    assert {k: batch[0][k] for k in want if k != "model_version"} == {
        k: want[k] for k in want if k != "model_version"}
    nxt = serving.recommend(model, {"responses": padded["responses"], "k": 2,
                                    "candidates": [" q5", "q6 "]}, limits, "v1")
    assert sorted(i["item_id"] for i in nxt["items"]) == ["q5", "q6"]


def test_same_time_attempts_keep_the_incorrect_one_and_the_order_of_the_rest() -> None:
    """Of two attempts at one item at one time the incorrect one counts (as the training
    SQL picks it); answers to different items at one time stay in the order given."""
    t = "2026-11-28T10:00:00Z"
    body = {"responses": [{"item_id": "q2", "correct": True, "answered_at": t},
                          {"item_id": "q1", "correct": True, "answered_at": t},
                          {"item_id": "q1", "correct": False, "answered_at": t},
                          {"item_id": "q3", "correct": True},
                          {"item_id": "q3", "correct": False}]}
    students, _, _ = serving.parse_predict(body, serving.Limits())
    assert students[0].item_ids == ["q2", "q1", "q3"]
    assert students[0].correct == [1, 0, 1]  # untimed: the first given


def test_batch_fast_path_refuses_an_item_twice_for_one_student(monkeypatch,
                                                               models: list[ItemModel]) -> None:
    """A repeated item (known or unknown) sends the batch to the detailed path, which keeps
    the first attempt; the same item for two students is fine."""
    model = models[0]
    twice = [{"item_id": "q1", "correct": 1}, {"item_id": "q1", "correct": 0}]
    unknown_twice = [{"item_id": "zz", "correct": 1}, {"item_id": "zz", "correct": 0}]
    for answers in (twice, unknown_twice):
        body = {"students": [{"responses": [{"item_id": "q1", "correct": 1}]},
                             {"responses": answers}]}
        assert plain._fast_predict(model, body, serving.Limits()) is None
        got = run(serving.predict, model, body, serving.Limits(), "v1")
        assert got == detailed(monkeypatch, serving.predict, model, body, serving.Limits(),
                               "v1")
    body = {"students": [{"responses": twice[:1]}, {"responses": twice[1:]}]}
    assert plain._fast_predict(model, body, serving.Limits()) is not None


@pytest.mark.parametrize("ids", [[], ["q1"], ["q1", "q2"], ["q3", "q1", "q7"],
                                 ["q1", "zz", "q2"], ["zz"], ["zz", "q1"], ["q1", "q2", "zz"],
                                 ["q1", 5, "q2"], ["q1", "q1"]])
def test_look_up_answers_as_one_get_per_id(models: list[ItemModel], ids: list[Any]) -> None:
    """:func:`plain._look_up` (one ``itemgetter`` call, then id by id after a missing id):
    the values of ``table.get`` id by id, ``None`` for each id the table lacks."""
    table = plain._rows_index(models[0])
    assert list(plain._look_up(table, ids)) == [table.get(i) for i in ids]


def test_look_up_refuses_an_unhashable_id(models: list[ItemModel]) -> None:
    """An unhashable id is a TypeError (the fast path then stands aside), wherever it is."""
    table = plain._rows_index(models[0])
    for ids in (["q1", ["q2"]], [["q2"]], ["zz", {"a": 1}]):
        with pytest.raises(TypeError):
            plain._look_up(table, ids)


def test_fast_answers_come_as_0_1_bytes(models: list[ItemModel]) -> None:
    """Booleans and 0/1 integers alike become the int8 answers of the fast path."""
    model = models[0]
    body = {"responses": [{"item_id": "q1", "correct": True}, {"item_id": "q2", "correct": 0},
                          {"item_id": "q3", "correct": 1}, {"item_id": "q4", "correct": False}]}
    req = plain.fast_single(model, body, serving.Limits())
    assert req is not None and isinstance(req.correct, np.ndarray)
    assert req.correct.dtype == np.int8 and req.correct.tolist() == [1, 0, 1, 0]
    assert (req.rows >> 1).tolist() == model.lookup(["q1", "q2", "q3", "q4"])[0].tolist()


def test_warm_builds_the_lookups_before_the_first_request(models: list[ItemModel]) -> None:
    model = model_from_dict(json.loads(models[0].to_json()))  # a fresh model, empty caches
    serving.warm(model, serving.Limits())
    built = set(model._cache)
    assert {"rows_index", "serving_items", ("ids_valid", 256)} <= built
    serving.predict(model, {"responses": [{"item_id": "q1", "correct": 1}], "items": ["q2"]},
                    serving.Limits(), "v1")
    assert set(model._cache) == built  # the request built nothing new


# --------------------------------------------------------------------------- learning-aware
@pytest.fixture(scope="module")
def learning_model() -> ItemModel:
    """A learning-aware model (recency, skills, pfa) of 1,500 items: room for 1,000-answer
    histories of distinct items."""
    return big_model(seed=5)


def test_warm_builds_the_learning_tables_before_the_first_request(
        learning_model: ItemModel) -> None:
    model = model_from_dict(json.loads(learning_model.to_json()))  # empty caches
    limits = serving.Limits()
    serving.warm(model, limits)
    built = {key: id(value) for key, value in model._cache.items()}
    assert {"learning", "learning_grid", "learning_tables", "learning_counting"} <= set(built)
    ids = list(model.item_ids)[:limits.max_responses]  # the longest history a request sends
    body = {"responses": [{"item_id": i, "correct": k % 3 != 0} for k, i in enumerate(ids)],
            "items": [model.item_ids[-1]]}
    answer = serving.predict(model, body, limits, "v1")
    assert answer["ability"]["n_answers"] == limits.max_responses
    # the request built nothing, and grew none of the tables (a grown one is a new object)
    assert {key: id(value) for key, value in model._cache.items()} == built


def learning_detailed(monkeypatch: pytest.MonkeyPatch, *args: Any) -> Any:
    """``serving.predict(*args)`` with the learning-aware path's fast lookup switched off."""
    with monkeypatch.context() as m:
        m.setattr(learning, "fast_single", lambda *a: None)
        return run(serving.predict, *args)


@pytest.mark.parametrize("noise", [0.05, 1.0])
def test_learning_fast_path_answers_as_the_detailed_path(monkeypatch: pytest.MonkeyPatch,
                                                         learning_model: ItemModel,
                                                         noise: float) -> None:
    answered_fast = 0
    original = learning.fast_single

    def counting(*args: Any) -> Any:
        nonlocal answered_fast
        answer = original(*args)
        answered_fast += answer is not None
        return answer

    monkeypatch.setattr(learning, "fast_single", counting)
    for limits in LIMITS:
        gen = Payloads(learning_model, seed=70 + int(noise * 100), noise=noise)
        for _ in range(200):
            payload = gen.payload()
            got = run(serving.predict, learning_model, payload, limits, "v1")
            assert got == learning_detailed(monkeypatch, learning_model, payload, limits, "v1"), \
                payload
    assert answered_fast > 30  # the fast path did answer


@pytest.mark.parametrize("method", ["EAP", "MAP"])
def test_learning_fast_path_on_long_histories(monkeypatch: pytest.MonkeyPatch,
                                              learning_model: ItemModel, method: str) -> None:
    rng = np.random.default_rng(17)
    ids = learning_model.item_ids
    for n in (1, 999, 1000):
        picked = rng.permutation(len(ids))[:n + 3]
        payload = {"responses": [{"item_id": ids[j], "correct": bool(rng.random() < 0.6)}
                                 for j in picked[:n]],
                   "items": [ids[j] for j in picked[n:]] + ["unknown"], "method": method}
        got = run(serving.predict, learning_model, payload, serving.Limits(), "v1")
        assert got[0] == "ok"
        assert got == learning_detailed(monkeypatch, learning_model, payload, serving.Limits(),
                                        "v1")
        assert json.loads(got[1])["ability"]["n_answers"] == n


# --------------------------------------------------------------------------- decoded bodies
def decoded_outcome(raw: bytes) -> tuple[str, Any]:
    """What :func:`body.decode_single` makes of ``raw``: ``("none", None)`` or the decoded
    body as the JSON value it stands for (absent optional keys left out; keys sorted, as
    :func:`parsed` writes them)."""
    got = body.decode_single(raw)
    if got is None:
        return ("none", None)
    assert got.raw is raw
    value = msgspec.to_builtins(got.body)  # UNSET fields are left out
    return ("ok", json.dumps(value, sort_keys=True))


def parsed(raw: bytes) -> tuple[str, Any]:
    """:func:`body.parse_json`'s value of ``raw``, as :func:`decoded_outcome` writes it."""
    return ("ok", json.dumps(body.parse_json(raw), sort_keys=True))


@pytest.mark.parametrize("raw", [
    b'{"responses": []}',
    b' {"responses": [{"item_id": "q1", "correct": true}], "items": null}\n',
    b'{"items": ["q3", "q4"], "responses": [{"correct": false, "item_id": "q1"}],'
    b' "method": "MAP", "truncate": "oldest"}',
    b'{"responses": [{"item_id": "q1", "correct": true}], "method": "MLE", "truncate": null}',
    '{"responses": [{"item_id": "\u00e9\u4e2d", "correct": true}]}'.encode(),
    b'{"responses": [{"item_id": "", "correct": true}, {"item_id": " q1", "correct": true}]}',
])
def test_decode_single_reads_the_common_body_as_parse_json_does(main: Any, raw: bytes) -> None:
    assert decoded_outcome(raw) == parsed(raw)


@pytest.mark.parametrize("raw", [
    # strictness: duplicates (at any level), escapes, NaN, a byte-order mark, trailing text
    b'{"responses": [{"item_id": "q1", "item_id": "q2", "correct": true}]}',
    b'{"responses": [{"item_id": "q1", "correct": true, "correct": false}]}',
    b'{"responses": [], "responses": [{"item_id": "q1", "correct": true}]}',
    b'{"responses": [], "items": ["q1"], "items": null}',
    b'{"responses": [{"item_id": "q\\u0031", "correct": true}]}',
    b'{"responses": [{"item_id": "q1", "correct": NaN}]}',
    b'\xef\xbb\xbf{"responses": []}',
    b'{"responses": []} x',
    b'{"responses": [{"item_id": "q\xff", "correct": true}]}',
    b'{"responses": [{"item_id": "\xed\xa0\x80", "correct": true}]}',
    # a colon inside a string (the count cannot tell it from a duplicate: the general path)
    b'{"responses": [{"item_id": "a:b", "correct": true}]}',
    # another shape: 0/1 answers, integer ids, timestamps, item_skills, a batch, extra keys
    b'{"responses": [{"item_id": "q1", "correct": 1}]}',
    b'{"responses": [{"item_id": 7, "correct": true}]}',
    b'{"responses": [{"item_id": "q1", "correct": true, "answered_at": 1700000000}]}',
    b'{"responses": [], "item_skills": {"q9": "s1"}}',
    b'{"students": [{"responses": []}]}',
    b'{"responses": [], "x": 1}',
    b'{"items": ["q1"]}',
    b'[]', b'{', b'',
])
def test_decode_single_leaves_everything_else_to_parse_json(main: Any, raw: bytes) -> None:
    assert decoded_outcome(raw) == ("none", None)


def test_decoded_bodies_of_random_requests(main: Any, models: list[ItemModel],
                                           learning_model: ItemModel) -> None:
    """Every random request, as the text a client sends: ``decode_single`` either leaves it to
    ``parse_json`` or reads what ``parse_json`` reads, and ``serving.predict`` gives the
    decoded body the answer (or error) it gives the parsed one, for each kind of model -
    including the decoded bodies the serving path declines (an unknown method, a repeated
    item, an invalid id, a cap exceeded), which it answers from the text."""
    decoded = 0
    for m, model in enumerate([*models, learning_model]):
        for limits, noise in [(limits, noise) for limits in LIMITS for noise in (0.05, 1.0)]:
            gen = Payloads(model, seed=300 + m, noise=noise)
            for _ in range(100):
                payload = as_booleans(gen.payload())
                raw = json.dumps(payload, separators=(",", ":")).encode()
                got = body.decode_single(raw)
                if got is None:
                    continue
                decoded += 1
                assert decoded_outcome(raw) == parsed(raw), raw
                want = run(serving.predict, model, body.parse_json(raw), limits, "v1")
                assert run(serving.predict_decoded, model, got, limits, "v1") == want, raw
    assert decoded > 400


def as_booleans(payload: Any) -> Any:
    """``payload`` with its 0/1 answers sent as JSON booleans (a request with a 0/1 answer
    is the general path's: the decoded path would rarely see one with several answers)."""
    answers = payload.get("responses") if isinstance(payload, dict) else None
    for answer in answers if isinstance(answers, list) else []:
        if isinstance(answer, dict) and type(answer.get("correct")) is int and (
                answer["correct"] in (0, 1)):
            answer["correct"] = bool(answer["correct"])
    return payload


def test_decoded_long_histories_answer_as_the_general_path(learning_model: ItemModel,
                                                           models: list[ItemModel]) -> None:
    rng = np.random.default_rng(23)
    for model in (learning_model, models[0], models[1]):
        ids = model.item_ids
        for n in (0, 1, min(1000, len(ids) - 3)):
            picked = rng.permutation(len(ids))[:n + 3]
            payload = {"responses": [{"item_id": ids[j], "correct": bool(rng.random() < 0.6)}
                                     for j in picked[:n]],
                       "items": [ids[j] for j in picked[n:]] + ["unknown"]}
            raw = json.dumps(payload).encode()
            decoded = body.decode_single(raw)
            assert decoded is not None
            got = run(serving.predict_decoded, model, decoded, serving.Limits(), "v1")
            assert got[0] == "ok"
            assert got == run(serving.predict, model, payload, serving.Limits(), "v1")


def test_the_server_decodes_the_common_body_and_parses_the_rest(main: Any, monkeypatch
                                                                ) -> None:
    """``read_json`` gives the predict route a decoded body for the common request (no
    ``parse_json``), and anything else parsed; the other routes always get parsed JSON."""
    parsed = []
    real = main.parse_json
    monkeypatch.setattr(main, "parse_json", lambda raw: parsed.append(raw) or real(raw))

    class Request:
        def __init__(self, raw: bytes) -> None:
            self.environ = {"CONTENT_TYPE": "application/json",
                            "CONTENT_LENGTH": str(len(raw))}
            self.raw = raw

        def get_data(self) -> bytes:
            return self.raw

    common = b'{"responses": [{"item_id": "q1", "correct": true}], "items": ["q2"]}'
    got = main.read_json(Request(common), single=True)
    assert isinstance(got, body.Decoded) and got.raw == common and parsed == []
    assert main.read_json(Request(common)) == json.loads(common)  # not the predict route
    timed = b'{"responses": [{"item_id": "q1", "correct": true, "answered_at": 1}]}'
    assert main.read_json(Request(timed), single=True) == json.loads(timed)
    assert parsed == [common, timed]
    with pytest.raises(serving.RequestError) as err:
        main.read_json(Request(b'{"responses": [], "responses": []}'), single=True)
    assert err.value.status == 400 and "duplicate key" in err.value.message


def test_the_refresh_layer_serves_without_predicts_decoders(tmp_path: Path) -> None:
    """``prepare`` calls ``irt.serving.predict`` (the skew check, ``irt.refresh.monitoring``)
    and installs neither msgspec nor orjson (``functions/prepare/requirements.txt``): the
    serving package must import and answer a parsed body without them."""
    from fresh_python import run_fresh

    script = (
        "import sys\n"
        "sys.modules['msgspec'] = None; sys.modules['orjson'] = None  # importing them fails\n"
        "from irt import serving\n"
        "from irt.engine.simulate import simulate\n"
        "from irt.engine.calibrate import FitConfig, fit\n"
        "model = fit(simulate(200, 8, 2, seed=1).responses, FitConfig(compute_se=False)).model\n"
        "out = serving.predict(model, {'responses': [{'item_id': 'q1', 'correct': True}],\n"
        "                              'items': ['q2']}, serving.Limits(), 'v')\n"
        "assert 0.0 < out['probabilities']['q2'] < 1.0, out\n"
        "import irt.refresh.monitoring\n"
        "print('ok')\n")
    done = run_fresh(script, base_env={"PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_decode_single_on_mutated_texts_never_reads_what_parse_json_reads_otherwise(
        main: Any) -> None:
    """Byte-level mutations of common bodies (a quote, colon, brace, comma, backslash,
    digit, letter or non-ASCII byte inserted, deleted or replaced; a pair of keys repeated):
    whatever ``decode_single`` accepts, ``parse_json`` accepts with the same value - the
    decoder never takes a text the general path refuses or reads differently."""
    rng = random.Random(20261206)
    bases = [
        b'{"responses":[{"item_id":"q1","correct":true},{"item_id":"q2","correct":false}],'
        b'"items":["q3"],"method":"EAP"}',
        b'{ "responses" : [ { "correct" : true , "item_id" : "a b" } ] , "truncate" : null }',
        '{"responses":[{"item_id":"\u00e9","correct":false}],"items":null}'.encode(),
    ]
    alphabet = [b'"', b":", b"{", b"}", b"[", b"]", b",", b"\\", b"1", b"e", b"t", b" ",
                b"\xc3", b"\xa9", b"\x00", b'"item_id":"q9",', b'"correct":true,']
    accepted = refused = 0
    for _ in range(6000):
        raw = bytearray(rng.choice(bases))
        for _ in range(rng.choice([1, 1, 2, 3])):
            at = rng.randrange(len(raw) + 1)
            op = rng.random()
            if op < 0.4:
                raw[at:at] = rng.choice(alphabet)
            elif op < 0.7:
                del raw[at:at + rng.choice([1, 2, 5])]
            else:
                raw[at:at + 1] = rng.choice(alphabet)
        text = bytes(raw)
        got = decoded_outcome(text)
        if got[0] == "none":
            refused += 1
            continue
        accepted += 1
        assert outcome(body.parse_json, text)[0] == "ok", text
        assert got == parsed(text), text
    assert accepted > 100 and refused > 3000
