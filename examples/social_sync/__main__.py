"""``python -m examples.social_sync``: see :mod:`examples.social_sync.run`."""

import sys

from .run import main

sys.exit(main())
