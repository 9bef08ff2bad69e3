"""``python -m normcoef.generate``: an alias kept for existing commands and scripts.

The command lives in ``normcoef.cli.generate`` (also the ``normcoef-generate`` console script).
"""

from normcoef.cli.generate import main

if __name__ == "__main__":
    main()
