"""``python -m irt``: see :mod:`irt.tools.cli`."""

import sys

from irt.tools.cli import main

sys.exit(main())
