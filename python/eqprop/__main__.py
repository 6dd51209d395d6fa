"""``python -m eqprop``: the ``eqprop`` command line (eqprop.cli) without the console script."""

import sys

from eqprop.cli import main

sys.exit(main())
