"""``python -m eval_platform.cli.api ...``: ``evalp ...`` under the module name test harnesses and benchmarks start
``evalp serve`` with. The commands it was named for live in :mod:`eval_platform.cli.server`,
:mod:`eval_platform.cli.tokens`, :mod:`eval_platform.cli.status` and :mod:`eval_platform.cli.retention`.
"""

from __future__ import annotations

import sys

from eval_platform.cli.main import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
