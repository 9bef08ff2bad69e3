"""``python -m normcoef.report ...``: see ``normcoef.report.cli``."""

from normcoef.report.cli import main

main()
