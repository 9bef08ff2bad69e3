"""``python -m normcoef.report``: an alias kept for existing commands and scripts.

The command lives in ``normcoef.cli.report`` (also the ``normcoef-report`` console script).
"""

from normcoef.cli.report import main

main()
