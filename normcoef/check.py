"""``python -m normcoef.check``: an alias kept for existing commands and scripts.

The command lives in ``normcoef.cli.check`` (also the ``normcoef-check`` console script).
"""

from normcoef.cli.check import main

if __name__ == "__main__":
    main()
