"""``irt``: Item Response Theory engine shared by the ``prepare`` and ``predict`` functions.

numpy-only at import time; :mod:`irt.engine.calibrate` (which needs scipy) is imported
lazily by callers that fit models, so ``predict`` never loads scipy.
"""

__version__ = "0.1.0"
