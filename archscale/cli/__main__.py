"""``python -m archscale.cli``: the same as the ``archscale`` command."""

import sys

from . import main

sys.exit(main())
