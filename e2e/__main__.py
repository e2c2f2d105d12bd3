"""``python -m e2e``: see :mod:`e2e.run`."""

from __future__ import annotations

import sys

from e2e.run import main

sys.exit(main())
