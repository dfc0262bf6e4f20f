"""``calibrate.fit(..., progress=...)``: the callback the command line's progress display
uses sees every plain EM step, with the objective and the change that decide convergence."""

from __future__ import annotations

import numpy as np
import pytest

from irt.engine.calibrate import FitConfig, Priors, fit
from irt.engine.simulate import simulate


@pytest.mark.parametrize("accelerate", [True, False])
def test_progress_reports_the_em_steps(accelerate: bool) -> None:
    responses = simulate(600, 15, 10, seed=4).responses
    seen: list[tuple[int, float, float]] = []
    config = FitConfig(accelerate=accelerate, compute_se=False)
    result = fit(responses, config, progress=lambda *event: seen.append(event))
    cycles = [c for c, _, _ in seen]
    assert cycles == sorted(set(cycles)) and cycles[0] == 1
    assert cycles[-1] == result.iterations  # the last step is the converged plain one
    if not accelerate:
        assert cycles == list(range(1, result.iterations + 1))
        np.testing.assert_allclose([v for _, v, _ in seen], result.history)
    assert result.converged and seen[-1][2] < config.tol <= seen[0][2]
    assert all(np.isfinite(v) for _, v, _ in seen)
    # the callback changes nothing
    again = fit(responses, config)
    np.testing.assert_array_equal(again.model.a, result.model.a)
    assert again.iterations == result.iterations


def test_progress_objective_is_the_log_likelihood_without_priors() -> None:
    responses = simulate(600, 15, 10, seed=4).responses
    seen: list[tuple[int, float, float]] = []
    result = fit(responses, FitConfig(priors=Priors(), accelerate=False, compute_se=False),
                 progress=lambda *event: seen.append(event))
    # the objective before the last step; the final log-likelihood is after it
    assert seen[-1][1] == pytest.approx(result.log_likelihood, abs=1e-3)
