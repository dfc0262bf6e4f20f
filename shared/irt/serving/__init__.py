"""The serving layer: ``predict``'s request contract and answers, free of HTTP and I/O.

* :mod:`irt.serving.requests` - validation of the request bodies (``docs/predict-openapi.yaml``);
* :mod:`irt.serving.plain`    - answers for a plain IRT model (with the fast paths);
* :mod:`irt.serving.learning` - answers for a learning-aware model;
* :mod:`irt.serving.api`      - one entry per route, choosing between the two;
* :mod:`irt.serving.body`     - strict JSON parsing of a request body, and the common
  ``predict`` body decoded to checked objects (``predict``'s requirements only);
* :mod:`irt.serving.config`   - ``predict``'s configuration, validated once at start;
* :mod:`irt.serving.loader`   - the serving model, loaded from the store and refreshed.

Uses the engine, the store and :mod:`irt.errors`; never the refresh layer or an HTTP
framework.  What this package exports is what ``functions/predict/main.py`` and the refresh
layer's canary call.
"""

from irt.errors import RequestError
from irt.serving.api import model_metadata, predict, predict_decoded, recommend, warm
from irt.serving.requests import Limits, Student, parse_next, parse_predict

__all__ = ["Limits", "RequestError", "Student", "model_metadata", "parse_next", "parse_predict",
           "predict", "predict_decoded", "recommend", "warm"]
