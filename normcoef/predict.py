"""``python -m normcoef.predict``: an alias kept for existing commands and scripts.

The command lives in ``normcoef.cli.predict`` (also the ``normcoef-predict`` console script).
"""

from normcoef.cli.predict import main

if __name__ == "__main__":
    main()
