"""``python -m normcoef.report``: an alias kept for existing commands and scripts.

The command lives in ``normcoef.cli.report`` (also the ``normcoef-report`` console script).
``-m`` runs this file for the package, so it sits here, but it is in the aliases' row of
tests/test_layers.py, not the report's: nothing imports it, and the report package stays
below the commands.
"""

from normcoef.cli.report import main

main()
