"""``irt``: Item Response Theory for the ``prepare`` and ``predict`` Cloud Functions.

One package, in layers (its folders), whose imports go one way (``tests/test_layers.py``):

* :mod:`irt.engine`  - the numerics (numpy/scipy only; no HTTP, cloud client, I/O or
  environment variable);
* :mod:`irt.serving` - ``predict``'s request contract and answers, and its model loader;
* :mod:`irt.refresh` - ``prepare``'s pipeline, source to published model;
* :mod:`irt.tools`   - the command lines (``python -m irt``, ``irt.ops``, ``irt.explain``,
  ``irt.fairness``);

beside :mod:`irt.store` (the artifact layout), :mod:`irt.errors` (every error class) and
:mod:`irt.settings` (environment values, checked).  Importing the package imports nothing:
``predict`` loads only what a request needs (never scipy, the refresh layer or the tools).
"""

__version__ = "0.1.0"
