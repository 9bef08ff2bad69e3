"""Build model, loss, optimizer and scheduler from composed configs (Hydra ``_target_``).

What a group may build is what its options in conf/ name (``buildable_targets``): Hydra's
``instantiate`` runs under that execution whitelist, and a config that comes from elsewhere (a
checkpoint's) is checked against it before anything is built (``unbuildable`` says what else it
would call).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from normcoef.conf_dir import CONF_DIR
from normcoef.data.info import DatasetInfo

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
"""``conf/optimizer``: the network's parameters -> its optimizer."""
SchedulerFactory = Callable[[torch.optim.Optimizer, int], LRScheduler | None]
"""``conf/scheduler``: (optimizer, ``trainer.steps``) -> its schedule, None for a constant rate."""

BUILT_GROUPS = ("model", "activation", "loss")
"""The groups ``build_model`` and ``build_loss`` instantiate."""


def build(config: DictConfig, group: str, **kwargs: Any) -> Any:
    """Hydra's ``instantiate`` of a ``conf/<group>`` option, allowed to call only what the
    group's options name (its execution whitelist), with a constructor's own ValueError (e.g.
    ``model.channels=0``) passed on as itself rather than wrapped in Hydra's multi-line
    InstantiationException."""
    whitelist = sorted(_with_defining_names(buildable_targets(group)))
    try:
        return instantiate(config, _execution_whitelist_=whitelist, **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, ValueError):
            raise error.__cause__ from None
        raise


def build_model(
    model_cfg: DictConfig,
    activation_cfg: DictConfig,
    in_channels: int,
    info: DatasetInfo | None = None,
) -> nn.Module:
    """The network of ``conf/model`` with the activation of ``conf/activation``, its halo
    wrapped along the periodic axes of the data set's grid (``info``; default: east-west).

    Both periodicities come from the data: a ``model.periodic_y`` key (configs and checkpoints
    from before) must agree with the grid, or the network would pad another grid than its data.
    """
    info = info or DatasetInfo()
    configured = model_cfg.get("periodic_y")
    if configured is not None and bool(configured) != info.periodic_y:
        raise ValueError(
            f"model.periodic_y={configured} but the data set's grid has "
            f"periodic_y={info.periodic_y}; remove model.periodic_y: the grid's periodicity comes "
            "from the data set's metadata.json"
        )
    activation = build(activation_cfg, "activation")
    return build(
        model_cfg,
        "model",
        in_channels=in_channels,
        activation=activation,
        periodic_x=info.periodic_x,
        periodic_y=info.periodic_y,
    )


def build_loss(loss_cfg: DictConfig) -> nn.Module:
    return build(loss_cfg, "loss")


def optimizer_factory(optimizer_cfg: DictConfig) -> OptimizerFactory:
    """The optimizer of ``conf/optimizer`` (a ``_partial_``): the loop gives it the parameters.

    Never from a checkpoint's config: resuming builds the current run's (``BUILT_GROUPS``).
    """
    return build(optimizer_cfg, "optimizer")


def scheduler_factory(scheduler_cfg: DictConfig) -> SchedulerFactory:
    """The schedule of ``conf/scheduler`` (a ``_partial_`` of ``normcoef.training.schedules``)."""
    return build(scheduler_cfg, "scheduler")


def _with_defining_names(targets: Iterable[str]) -> set[str]:
    """``targets`` and the names where each is defined (``torch.nn.ELU`` is
    ``torch.nn.modules.activation.ELU``): Hydra checks the defining name when a built
    ``_partial_`` is called."""
    names = set(targets)
    for target in targets:
        module, _, attribute = target.rpartition(".")
        obj = getattr(importlib.import_module(module), attribute)
        names.add(f"{obj.__module__}.{obj.__qualname__}")
    return names


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when present, CPU otherwise."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"trainer.device={name} but no CUDA device is visible; use auto or cpu")
    return torch.device(name)


def _nodes(node: Any, where: str) -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of ``node`` and everything inside it, depth first."""
    yield where, node
    children: Iterable[tuple[Any, Any]]
    if isinstance(node, Mapping):
        children = node.items()
    elif isinstance(node, list | tuple):
        children = enumerate(node)
    else:
        return
    for key, child in children:
        yield from _nodes(child, f"{where}.{key}")


@functools.cache
def buildable_targets(group: str) -> frozenset[str]:
    """Every ``_target_`` in the options of ``conf/<group>``.

    The one list of what a config may build there (``build``'s execution whitelist, and what a
    stored config is checked against): a new option file extends it.
    """
    targets = {
        node["_target_"]
        for path in (CONF_DIR / group).glob("*.yaml")
        for _, node in _nodes(OmegaConf.to_container(OmegaConf.load(path)), group)
        if isinstance(node, Mapping) and "_target_" in node
    }
    if not targets:
        raise FileNotFoundError(
            f"no options under {CONF_DIR / group}: normcoef needs its conf/ directory beside "
            "the package (install from a clone, e.g. pip install -e .)"
        )
    return frozenset(targets)


def unbuildable(config: Mapping) -> str | None:
    """What in the model, activation and loss of a plain ``config`` (a dict, as stored in a
    checkpoint) would make Hydra call anything outside their ``buildable_targets``; None if
    nothing would.

    Hydra instantiates a ``_target_`` at any depth (inside arguments and ``_args_`` too), and
    an interpolation such as ``${oc.decode:...}`` can produce one, so every node counts.
    """
    for group in BUILT_GROUPS:
        node = config.get(group)
        if not isinstance(node, Mapping) or "_target_" not in node:
            return f"{group} (no _target_)"
        allowed = buildable_targets(group)
        for where, value in _nodes(node, group):
            if isinstance(value, Mapping) and "_target_" in value:
                target = value["_target_"]
                if not (isinstance(target, str) and target in allowed):
                    return f"{where}._target_={target!r}"
            elif isinstance(value, str) and "${" in value:
                return f"{where}={value!r} (an interpolation)"
    return None
