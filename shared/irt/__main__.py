"""``python -m irt``: see :mod:`irt.cli`."""

import sys

from .cli import main

sys.exit(main())
