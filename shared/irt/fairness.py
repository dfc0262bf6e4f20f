"""``python -m irt.fairness``: runs :func:`irt.tools.fairness.main` (the documented name)."""

import sys

from irt.tools.fairness import main

if __name__ == "__main__":
    sys.exit(main())
