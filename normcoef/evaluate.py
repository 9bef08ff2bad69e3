"""``python -m normcoef.evaluate``: an alias kept for existing commands and scripts.

The command lives in ``normcoef.cli.evaluate`` (also the ``normcoef-evaluate`` console script).
"""

from normcoef.cli.evaluate import main

if __name__ == "__main__":
    main()
