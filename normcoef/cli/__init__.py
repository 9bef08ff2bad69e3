"""The commands, one module each; everything else in normcoef is library.

Each module's ``main`` is a console script (``normcoef-<name>``) and a ``python -m`` form
(``python -m normcoef.<name>``, through the alias beside the package): train, generate,
evaluate, predict, report, convert, check. A command parses its arguments (Hydra for train and
generate), calls library functions and turns a user's mistake into one ``error:`` line
(``normcoef.console``); it holds no logic a test could not reach through the library.
"""
