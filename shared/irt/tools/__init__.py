"""The tools: command lines for data scientists and operators, on top of the other layers.

* :mod:`~irt.tools.cli`      - ``python -m irt {fit,score,evaluate,demo,...}``;
* :mod:`~irt.tools.common`   - what the subcommands share: the answers-file options and
  reader, messages on stderr, error handling;
* :mod:`~irt.tools.csvio`    - answers and scores CSV files;
* :mod:`~irt.tools.explain`  - ``python -m irt.explain``: one prediction step by step;
* :mod:`~irt.tools.fairness` - ``python -m irt.fairness``: differential item functioning;
* :mod:`~irt.tools.ops`      - ``python -m irt.ops``: list, show and roll back model versions.
"""
