"""Offline metrics against an LMS outcome (ML Test Score, model 2): the study of
``irt.tools.online_study`` at full size, with its correlations.

Models of varied quality (true parameters, calibrated, the true ones with four levels of
noise, the true ones on the wrong items) are scored offline (AUC and log-loss of held-out
answers, online protocol) and serve ``predict``'s real next-items code to a simulated LMS
whose learners learn fastest on items inside the target band. Reported: per (world, model)
the offline figures and the outcomes (share of recommended items in the band 0.6-0.8,
answers to mastery), Spearman's rho between them across models (per world and pooled) and
the permutation test's one-sided 1 % critical value; and the study's wall time.  It is a
study, not a speed test: the figure that matters is the correlation; the time only says
what ``make bench`` spends on it.  ``tests/tools/test_online_study.py`` runs the same study
at a smaller size and asserts the correlation.

    PYTHONPATH=shared .venv/bin/python benchmarks/bench_online_study.py [--seeds 1 2 3]
        [--json build/bench/online_study.json]
"""

from __future__ import annotations

import os
import sys

from irt.tools.online_study import main

if __name__ == "__main__":
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    code = main(sys.argv[1:])
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    sys.exit(code)
