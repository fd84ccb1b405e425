"""``python -m hmlc_core``: see :mod:`hmlc_core.cli`."""

import sys

from hmlc_core.cli import main

sys.exit(main())
