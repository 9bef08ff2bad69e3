"""``python -m normcoef.convert``: an alias kept for existing commands and scripts.

The command lives in ``normcoef.cli.convert`` (also the ``normcoef-convert`` console script).
"""

from normcoef.cli.convert import main

if __name__ == "__main__":
    main()
