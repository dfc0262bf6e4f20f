"""The engine: IRT numerics on numpy and scipy only (no HTTP, no cloud client, no I/O, no
environment variables).

Students x items throughout: an answer log is long format (one row per answer: the
student's index, the item's position, 0/1), never a dense matrix.

* :mod:`~irt.engine.responses`   - the answer log as integer-coded arrays;
* :mod:`~irt.engine.preprocess`  - rows -> first attempts, minimum-answer filters;
* :mod:`~irt.engine.model`       - the item bank (parameters, IRF, information, JSON);
* :mod:`~irt.engine.artifact`    - reading a model artifact (plain or learning-aware);
* :mod:`~irt.engine.calibrate`   - marginal maximum likelihood (EM) for 1PL/2PL/3PL/Rasch;
* :mod:`~irt.engine.squarem`     - the accelerated EM driver both calibrations use;
* :mod:`~irt.engine.ability`     - EAP/MAP ability estimates;
* :mod:`~irt.engine.learning`    - learning-aware ability (recency, skills, PFA covariates);
* :mod:`~irt.engine.learning_fit` - calibration of the learning-aware options;
* :mod:`~irt.engine.online`      - the online protocol's answer runs (plain predictions);
* :mod:`~irt.engine.evaluate`    - online evaluation (AUC, log-loss, calibration error);
* :mod:`~irt.engine.selection`   - next-item selection;
* :mod:`~irt.engine.simulate`    - simulated answer logs with known truth.

:mod:`~irt.engine.calibrate` and :mod:`~irt.engine.learning_fit` import scipy; everything
``predict`` imports from here is numpy only.
"""
