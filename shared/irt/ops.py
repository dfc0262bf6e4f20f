"""``python -m irt.ops``: runs :func:`irt.tools.ops.main` (the documented command name)."""

import sys

from irt.tools.ops import main

if __name__ == "__main__":
    sys.exit(main())
