"""``python -m irt.explain``: runs :func:`irt.tools.explain.main` (the documented command name)."""

import sys

from irt.tools.explain import main

if __name__ == "__main__":
    sys.exit(main())
