"""Data: grids and masks, input fields, exact targets on disk, standardization, transforms.

Grids and fields (``grids``, ``fields``, ``distance``), data sets written and read as files
(``generation``, ``storage``), the original data's format (``original``, ``conversion``,
``verification``), per-channel ``standardization``, flips and turns (``transforms``) and the
torch ``Dataset`` the training reads (``torch_dataset``). Imports physics, never models or
training.
"""
