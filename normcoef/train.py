"""``python -m normcoef.train``: an alias kept for existing commands and scripts.

The command lives in ``normcoef.cli.train`` (also the ``normcoef-train`` console script).
"""

from normcoef.cli.train import main

if __name__ == "__main__":
    main()
