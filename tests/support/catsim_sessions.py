"""The same simulated adaptive sessions run two ways (tests and ``benchmarks/bench_adaptive.py``):

* :func:`serve_sessions` - through predict's real ``/next-items`` code,
  :func:`irt.serving.plain.recommend` (request parsing, EAP ability, selection, stop advice),
  one request per item, ``k = 1``;
* :func:`catsim_sessions` - through catsim 0.21 (``MaxInfoSelector``,
  ``NumericalSearchEstimator``: maximum likelihood with Dodd's heuristic while the answers
  are all right or all wrong; first item at ``theta = 0``).

Both use the same bank, the same true abilities and the same answers: examinee ``i`` answers
item ``j`` correctly iff ``answer_u[i, j] < P_j(theta_i)`` (common random numbers, so the two
runs differ only by their selection and ability estimates, and their difference is measured
on paired sessions).  catsim is imported only by :func:`catsim_sessions`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from irt.engine.model import ItemModel
from irt.serving.plain import recommend
from irt.serving.requests import Limits


@dataclass(frozen=True)
class Run:
    """Sessions of one method.

    Attributes:
        estimate: the final ability estimates, shape ``(n_examinees,)``.
        se: their standard errors (the EAP posterior SD; catsim: ``1 / sqrt(test info)``).
        length: items given per session.
        items: the items given, per session, in order.
        exposure: share of sessions each item was given in, shape ``(n_items,)``.
        seconds: wall time of each recommendation (selection and re-scoring), flat.
    """

    estimate: np.ndarray
    se: np.ndarray
    length: np.ndarray
    items: list[list[int]]
    exposure: np.ndarray
    seconds: np.ndarray


def answers(model: ItemModel, n_examinees: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """True abilities ``N(0, sigma^2)`` and the uniforms that decide every answer."""
    rng = np.random.default_rng(seed)
    return (rng.normal(0.0, model.population_sd, n_examinees),
            rng.random((n_examinees, model.n_items)))


def _correct(model: ItemModel, theta: float, u: np.ndarray, j: int) -> bool:
    return bool(u[j] < model.probability_by_position(theta, np.array([j]))[0])


def serve_sessions(model: ItemModel, theta: np.ndarray, answer_u: np.ndarray, *,
                   max_items: int, stop_se: float | None = None,
                   extra: dict[str, Any] | None = None,
                   seed_of: Any = None) -> Run:
    """Sessions through :func:`irt.serving.plain.recommend`: each step sends the answers so far
    (``k = 1``, EAP, ``extra`` request fields such as ``randomesque`` or ``exposure``) and gives
    the recommended item, until ``max_items`` items or, with ``stop_se``, until the answer's
    ``stop`` recommends stopping.  ``seed_of(i, step)``: the request's seed (``None``: none).
    """
    limits = Limits(max_responses=max(1000, max_items + 1))
    ids = model.item_ids
    est, ses, lengths, given, seconds = [], [], [], [], []
    for i, t in enumerate(theta):
        sent: list[dict[str, Any]] = []
        items: list[int] = []
        body: dict[str, Any] = {}
        while True:
            request: dict[str, Any] = {"responses": sent, "k": 1, **(extra or {})}
            if stop_se is not None:
                request["stop"] = {"se": stop_se, "max_items": max_items}
            if seed_of is not None:
                request["seed"] = int(seed_of(i, len(items)))
            start = time.perf_counter()
            body = recommend(model, request, limits)
            seconds.append(time.perf_counter() - start)
            done = (body["stop"]["recommended"] if stop_se is not None
                    else len(items) >= max_items) or not body["items"]
            if done:
                break
            j = model.index[body["items"][0]["item_id"]]
            items.append(j)
            sent.append({"item_id": ids[j], "correct": _correct(model, t, answer_u[i], j)})
        est.append(body["ability"]["theta"])
        ses.append(body["ability"]["se"])
        lengths.append(len(items))
        given.append(items)
    return _run(model, est, ses, lengths, given, seconds)


def catsim_sessions(model: ItemModel, theta: np.ndarray, answer_u: np.ndarray, *,
                    max_items: int, stop_se: float | None = None, bin_size: int = 1,
                    r_max: float = 1.0, seed: int = 0) -> Run:
    """The same sessions through catsim's selector and estimator (see the module docstring):
    ``max_items`` items, or fewer once catsim's SE, ``1 / sqrt(test information)`` at the
    estimate, is at or below ``stop_se``.

    ``bin_size > 1``: catsim's ``RandomesqueSelector(bin_size)`` (its draws from
    ``numpy.random.default_rng(seed)``) instead of ``MaxInfoSelector``; ``r_max < 1``:
    ``MaxInfoSelector(r_max)``, which passes over an item whose exposure rate so far (the
    share of the earlier sessions that gave it, kept up to date here as catsim's
    ``Simulator`` does) is at or above ``r_max`` - catsim's exposure control for maximum
    information (it has no Sympson-Hetter)."""
    from catsim import irt as catsim_irt
    from catsim.estimation import NumericalSearchEstimator
    from catsim.item_bank import ItemBank
    from catsim.selection import MaxInfoSelector, RandomesqueSelector

    bank = ItemBank(np.column_stack([model.a, model.b, model.c, np.ones(model.n_items)]))
    selector = RandomesqueSelector(bin_size) if bin_size > 1 else MaxInfoSelector(r_max)
    estimator = NumericalSearchEstimator()
    rng = np.random.default_rng(seed)
    counts = np.zeros(model.n_items)
    est, ses, lengths, given, seconds = [], [], [], [], []
    for i, t in enumerate(theta):
        items: list[int] = []
        resp: list[bool] = []
        th, se = 0.0, float("inf")
        while len(items) < max_items and not (stop_se is not None and se <= stop_se):
            start = time.perf_counter()
            j = int(selector.select(item_bank=bank, administered_items=items, est_theta=th,
                                    rng=rng))
            items.append(j)
            resp.append(_correct(model, t, answer_u[i], j))
            th = float(estimator.estimate(item_bank=bank, administered_items=items,
                                          response_vector=resp, est_theta=th))
            se = float(catsim_irt.see(th, bank.get_items(items)))
            seconds.append(time.perf_counter() - start)
        est.append(th)
        ses.append(se)
        lengths.append(len(items))
        given.append(items)
        if r_max < 1.0:
            counts[items] += 1
            for j, rate in enumerate((counts / (i + 1)).tolist()):
                bank.update_exposure_rate(j, rate)
    return _run(model, est, ses, lengths, given, seconds)


def _run(model: ItemModel, est: list[float], ses: list[float], lengths: list[int],
         given: list[list[int]], seconds: list[float]) -> Run:
    seen = np.zeros(model.n_items)
    for items in given:
        seen[items] += 1
    return Run(np.array(est), np.array(ses), np.array(lengths), given,
               seen / max(len(given), 1), np.array(seconds))


def rmse(estimate: np.ndarray, theta: np.ndarray) -> float:
    """Root mean squared error of the estimates."""
    return float(np.sqrt(np.mean((estimate - theta) ** 2)))


def paired_bootstrap_se(a: np.ndarray, b: np.ndarray, theta: np.ndarray, *,
                        n_boot: int = 2000, seed: int = 0) -> float:
    """Bootstrap SE of ``rmse(a) - rmse(b)`` over examinees resampled in pairs (the same
    examinees for both, as the sessions share their abilities and answers)."""
    rng = np.random.default_rng(seed)
    ea, eb = (a - theta) ** 2, (b - theta) ** 2
    idx = rng.integers(0, theta.shape[0], (n_boot, theta.shape[0]))
    diff = np.sqrt(ea[idx].mean(axis=1)) - np.sqrt(eb[idx].mean(axis=1))
    return float(diff.std(ddof=1))
