"""Sympson-Hetter exposure control (irt.engine.exposure, irt.engine.exposure_fit): the
filter's draws, the iterative simulation that computes the parameters, the ``exposure``
section of ``model.json`` and its validation by the loader, and ``python -m irt exposure``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from cat_sessions import bank

from irt.engine.artifact import load_model
from irt.engine.exposure import admitted, filter_uniforms, parameters
from irt.engine.exposure_fit import exposure_section, simulate, sympson_hetter
from irt.engine.model import ItemModel
from irt.engine.selection import Controls, next_items
from irt.errors import ModelFormatError
from irt.tools.cli import main


@pytest.fixture(scope="module")
def model() -> ItemModel:
    return bank(n_items=120, seed=3)


def test_draws_are_a_function_of_seed_and_item_and_uniform() -> None:
    pos = np.arange(50_000)
    u = filter_uniforms(7, pos)
    assert np.array_equal(u, filter_uniforms(7, pos))
    # the draw of an item does not depend on which other items are asked about
    assert np.array_equal(filter_uniforms(7, pos[[9, 3, 40_000]]), u[[9, 3, 40_000]])
    assert not np.array_equal(u, filter_uniforms(8, pos))
    assert u.min() >= 0.0 and u.max() < 1.0
    # uniform: mean 1/2 (SE 0.0013), deciles 1/10 each (SE 0.0013), no serial correlation
    assert abs(u.mean() - 0.5) < 0.006
    counts = np.bincount((u * 10).astype(int), minlength=10) / u.size
    assert np.all(np.abs(counts - 0.1) < 0.006)
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.02
    # the largest seed works (a JSON seed may go up to 2**64 - 1)
    assert filter_uniforms((1 << 64) - 1, pos[:3]).shape == (3,)


def test_admitted_passes_items_with_probability_k() -> None:
    k = np.array([0.0, 1.0, 0.3])
    hits = np.zeros(3)
    for seed in range(4000):
        hits += admitted(k, np.arange(3), seed)
    rate = hits / 4000
    assert rate[0] == 0.0 and rate[1] == 1.0
    assert abs(rate[2] - 0.3) < 3 * math.sqrt(0.3 * 0.7 / 4000)


def test_simulation_without_control_gives_every_session_its_length(model) -> None:
    sim = simulate(model, np.ones(model.n_items), n_examinees=300, test_length=15, seed=1)
    assert np.all(sim.length == 15)
    # without control, selected and administered are the same events
    assert np.array_equal(sim.selected, sim.administered)
    assert sim.administered.sum() == pytest.approx(15.0)
    # max information concentrates on a few items: the first one is given to everyone
    assert sim.administered.max() == 1.0
    # the EAPs track the true abilities (15 items: SE about 0.35)
    assert np.sqrt(np.mean((sim.estimate - sim.theta) ** 2)) < 0.5
    assert np.all((sim.se > 0.2) & (sim.se < 0.6))


def test_an_item_with_k_zero_is_selected_but_never_given(model) -> None:
    first = int(next_items(model, 0.0, 1)[0])  # every session's first selection
    k = np.ones(model.n_items)
    k[first] = 0.0
    sim = simulate(model, k, n_examinees=200, test_length=10, seed=2)
    assert sim.selected[first] == 1.0 and sim.administered[first] == 0.0
    assert np.all(sim.length == 10)


def test_sympson_hetter_brings_the_largest_exposure_to_r_max(model) -> None:
    r_max, n = 0.3, 2000
    result = sympson_hetter(model, r_max=r_max, test_length=15, n_examinees=n, seed=5)
    tolerance = 3 * math.sqrt(r_max * (1 - r_max) / n)
    assert result.max_exposure[0] == 1.0  # the first pass has no control
    assert result.converged and result.max_exposure[-1] <= r_max + tolerance
    assert np.all((result.k > 0) & (result.k <= 1)) and (result.k < 1).sum() >= 5
    # fresh sessions with those parameters: the largest exposure is near r_max, far below
    # the uncontrolled 1.0 (noise: the largest of 120 rates, each with SE 0.0072 at 4000)
    check = simulate(model, result.k, n_examinees=4000, test_length=15, seed=999)
    assert check.administered.max() <= r_max + 4 * math.sqrt(r_max * (1 - r_max) / 4000) + 0.02
    assert np.all(check.length == 15)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"r_max": 0.0}, "r_max"),
    ({"r_max": 1.5}, "r_max"),
    ({"r_max": 0.1, "test_length": 20}, "below test_length / n_items"),
    ({"test_length": 0}, "at least 1"),
    ({"test_length": 500}, "longer than the bank"),
])
def test_impossible_settings_are_refused(model, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        sympson_hetter(model, **kwargs)


def _with_section(model: ItemModel, section: object) -> str:
    doc = model.to_dict()
    doc["exposure"] = section
    return json.dumps(doc)


def test_the_section_round_trips_through_model_json(model) -> None:
    result = sympson_hetter(model, r_max=0.3, test_length=10, n_examinees=500, seed=1,
                            max_iterations=3)
    section = exposure_section(model, result, r_max=0.3, test_length=10, n_examinees=500,
                               seed=1)
    loaded = load_model(_with_section(model, section))
    assert loaded.exposure == section
    assert np.allclose(parameters(loaded), result.k, atol=5e-7)
    assert json.loads(loaded.to_json())["exposure"] == section
    assert parameters(model) is None  # no section, no parameters
    # an item the section does not list has K = 1
    partial = dict(section, parameters={model.item_ids[0]: 0.5})
    k = parameters(load_model(_with_section(model, partial)))
    assert k[0] == 0.5 and np.all(k[1:] == 1.0)


@pytest.mark.parametrize(("section", "field"), [
    ([], "exposure"),
    ({"method": "randomesque", "r_max": 0.2, "parameters": {"q0": 1}}, "exposure.method"),
    ({"r_max": 0.2, "parameters": {"q0": 1}}, "exposure.method"),
    ({"method": "sympson-hetter", "parameters": {"q0": 1}}, "exposure.r_max"),
    ({"method": "sympson-hetter", "r_max": 0, "parameters": {"q0": 1}}, "exposure.r_max"),
    ({"method": "sympson-hetter", "r_max": 1.2, "parameters": {"q0": 1}}, "exposure.r_max"),
    ({"method": "sympson-hetter", "r_max": 0.2, "parameters": {}}, "exposure.parameters"),
    ({"method": "sympson-hetter", "r_max": 0.2, "parameters": {"zz": 1}},
     "exposure.parameters.zz"),
    ({"method": "sympson-hetter", "r_max": 0.2, "parameters": {"q0": 1.5}},
     "exposure.parameters.q0"),
    ({"method": "sympson-hetter", "r_max": 0.2, "parameters": {"q0": -0.1}},
     "exposure.parameters.q0"),
    ({"method": "sympson-hetter", "r_max": 0.2, "parameters": {"q0": "0.5"}},
     "exposure.parameters.q0"),
    ({"method": "sympson-hetter", "r_max": 0.2, "parameters": {"q0": True}},
     "exposure.parameters.q0"),
    ({"method": "sympson-hetter", "r_max": 0.2, "parameters": {"q0": 1}, "simulation": 3},
     "exposure.simulation"),
    ({"method": "sympson-hetter", "r_max": 0.2, "parameters": {"q0": 1}, "k": {}},
     "exposure.k"),
])
def test_the_loader_rejects_a_broken_section_naming_the_field(model, section, field) -> None:
    with pytest.raises(ModelFormatError) as err:
        load_model(_with_section(model, section))
    assert err.value.field == field and err.value.message


def test_next_items_passes_over_filtered_items_reproducibly(model) -> None:
    ranking = next_items(model, 0.4, model.n_items)
    k = np.ones(model.n_items)
    k[ranking[:3]] = 0.0  # the three best can never pass
    k[ranking[3:10]] = 0.5
    picks = [tuple(next_items(model, 0.4, 4, controls=Controls(seed=s, exposure_k=k)))
             for s in range(40)]
    assert picks[0] == tuple(next_items(model, 0.4, 4, controls=Controls(seed=0, exposure_k=k)))
    assert all(not set(p) & set(ranking[:3].tolist()) for p in picks)
    assert len(set(picks)) > 5
    # what passes keeps the ranking's order, and each pick is the best item that passed
    order = {int(j): r for r, j in enumerate(ranking)}
    for seed, p in enumerate(picks):
        ok = admitted(k, ranking, seed)
        assert list(p) == [int(j) for j in ranking[ok][:4]]
        assert [order[j] for j in p] == sorted(order[j] for j in p)


def test_cli_writes_the_section_and_predicts_load_it(tmp_path: Path, model, capsys) -> None:
    src, out = tmp_path / "model.json", tmp_path / "sh.json"
    src.write_text(model.to_json())
    status = main(["exposure", str(src), "-o", str(out), "--r-max", "0.3", "--test-length",
                   "10", "--examinees", "800", "--seed", "4"])
    assert status == 0, capsys.readouterr().err
    loaded = load_model(out.read_bytes())
    assert loaded.exposure["r_max"] == 0.3 and loaded.exposure["simulation"]["converged"]
    assert loaded.exposure["simulation"]["test_length"] == 10
    assert set(loaded.exposure["parameters"]) == set(model.item_ids)
    assert np.array_equal(loaded.b, model.b)  # the bank itself unchanged
    assert "largest exposure 1.000 without control" in capsys.readouterr().err
    assert main(["exposure", str(src), "-o", str(out), "--r-max", "0.01"]) == 2


def test_the_filter_draws_a_growing_prefix_and_agrees_with_drawing_every_item() -> None:
    """``pick`` draws only for a prefix of the ranking (doubled until it holds ``k`` passes):
    the items are those of drawing every item, also when most items fail (the prefix grows
    past its first 64) and when fewer than ``k`` pass in the whole bank."""
    from irt.engine.selection import pick

    n = 5000
    ranked = np.random.default_rng(1).permutation(n)
    for share, k in ((0.02, 5), (0.002, 7), (0.5, 3), (0.0, 2)):
        kk = np.full(n, share)
        for seed in range(5):
            got = pick(ranked, k, Controls(seed=seed, exposure_k=kk))
            want = ranked[admitted(kk, ranked, seed)][:k]
            assert np.array_equal(got, want)
    assert pick(ranked, 2, Controls(seed=0, exposure_k=np.zeros(n))).size == 0


def test_cli_exits_3_when_the_simulation_does_not_converge(tmp_path: Path, model) -> None:
    src, out = tmp_path / "model.json", tmp_path / "sh.json"
    src.write_text(model.to_json())
    # one pass is the uncontrolled one: its largest exposure is 1.0, far above 0.3
    assert main(["exposure", str(src), "-o", str(out), "--r-max", "0.3", "--test-length", "10",
                 "--examinees", "300", "--iterations", "1", "-q"]) == 3
    section = load_model(out.read_bytes()).exposure
    assert section["simulation"]["converged"] is False
    assert section["simulation"]["max_exposure"] == [1.0]


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--tolerance", "inf", "must be a number in [0, 1), got inf"),
    ("--tolerance", "-0.1", "must be a number in [0, 1), got -0.1"),
    ("--r-max", "nan", "must be a number in (0, 1], got nan"),
    ("--examinees", "1000000000000", "must be at most 100000, got 1000000000000"),
    ("--examinees", "0", "must be at least 1, got 0"),
    ("--iterations", "1001", "must be at most 1000, got 1001"),
    ("--test-length", "0", "must be at least 1, got 0"),
    ("--seed", "-1", "must be at least 0, got -1"),
])
def test_cli_refuses_options_out_of_range_before_the_simulation(
        tmp_path: Path, option: str, value: str, message: str, capsys) -> None:
    """``--tolerance inf`` was accepted (any simulation then 'met' r_max) and ``--examinees
    10**12`` ended in numpy's MemoryError traceback: argparse refuses both, naming the
    option, before the model is read (it does not exist here)."""
    with pytest.raises(SystemExit) as exit_:
        main(["exposure", str(tmp_path / "missing.json"), "-o", str(tmp_path / "sh.json"),
              option, value])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and f"error: argument {option}: {message}" in err


def test_sympson_hetter_refuses_a_tolerance_outside_0_1(model) -> None:
    for tolerance in (math.inf, math.nan, -0.01, 1.0):
        with pytest.raises(ValueError, match=r"tolerance must be in \[0, 1\)"):
            sympson_hetter(model, tolerance=tolerance)
