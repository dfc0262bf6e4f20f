"""The refresh layer: ``prepare``'s pipeline, source -> prepare -> check -> calibrate -> gate
-> publish (:mod:`irt.refresh.pipeline`).

* :mod:`~irt.refresh.sql`        - the answer-log SQL and its parameters;
* :mod:`~irt.refresh.sources`    - BigQuery and DuckDB answer sources;
* :mod:`~irt.refresh.quality`    - the quality gate's online comparison;
* :mod:`~irt.refresh.monitoring` - data checks, drift, the serving canary and skew replay;
* :mod:`~irt.refresh.config`     - the configuration (environment) and the per-run options;
* :mod:`~irt.refresh.logs`       - the JSON log lines, one shape for every step's outcome;
* :mod:`~irt.refresh.columns`    - Arrow and numpy helpers: answer codes and order, the CSV;
* :mod:`~irt.refresh.pipeline`   - the run, one named function per step;
* :mod:`~irt.refresh.report`     - the model report (``report.html``, also ``irt report``):
  what it shows, bounded; :mod:`~irt.refresh.report_page` its HTML and Plotly figures.

Uses the engine, the store and :mod:`irt.errors`; uses the serving layer only to exercise
``predict``'s own answers (the canary and the skew replay in :mod:`~irt.refresh.monitoring`).
"""
