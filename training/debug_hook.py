"""The smdebug hook: SageMaker's when the job carries a DebugHookConfig, else our own.

smdebug 1.0.34 works on torch 2.x for what we use (module/loss hooks, parameter gradient hooks,
the trial reader). Two compatibility points are handled here, at the narrowest place:
- `create_from_json_file()` raises FileNotFoundError when no debughookconfig.json exists (any run
  outside a configured SageMaker job), so we check for the file first and build the hook ourselves.
- smdebug has no way to unregister its module hooks, so a model evaluated after `close()` (the
  test split) would keep writing EVAL tensors into the judged trial. `detach` removes the hook's
  forward hooks from the modules.
- smdebug records a module's inputs in a forward *post* hook. torchvision's ReLUs are
  `inplace=True`, so by then the "input" has been overwritten with the output (no negatives): the
  relu_input collection would hold ReLU outputs. `attach` turns in-place off on every nn.ReLU
  (same numbers, one extra activation buffer per ReLU call).
"""
from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from training.debugger_collections import COLLECTIONS, collection_save_interval

#: Where SageMaker writes the hook config when the job has a DebugHookConfig (smdebug's default).
SAGEMAKER_HOOK_CONFIG = Path("/opt/ml/input/config/debughookconfig.json")
#: smdebug's override of that path.
HOOK_CONFIG_ENV = "SMDEBUG_CONFIG_FILE_PATH"


def hook_config_path() -> Path | None:
    """The managed hook config if this run has one, else None."""
    path = Path(os.environ.get(HOOK_CONFIG_ENV) or SAGEMAKER_HOOK_CONFIG)
    return path if path.is_file() else None


def create_hook(out_dir: Path, save_interval: int):
    """A PyTorch smdebug hook. From the managed JSON config when present (it names its own out
    dir); otherwise saving `COLLECTIONS` to `out_dir` every `save_interval` steps."""
    import smdebug.pytorch as smd

    config = hook_config_path()
    if config is not None:
        return smd.Hook.create_from_json_file(str(config))
    hook = smd.Hook(
        out_dir=str(out_dir),
        save_config=smd.SaveConfig(save_interval=save_interval),
        include_collections=list(COLLECTIONS),
        export_tensorboard=False,
    )
    for name, params in COLLECTIONS.items():
        collection = hook.get_collection(name)
        if "include_regex" in params:
            collection.include(params["include_regex"])
        collection.save_config = smd.SaveConfig(
            save_interval=collection_save_interval(name, save_interval)
        )
    return hook


def register(hook, model: nn.Module, loss_fn: nn.Module) -> None:
    """Register the model (weights, gradients, module inputs/outputs) and the loss *module*
    (a functional loss would never reach the losses collection)."""
    if not isinstance(loss_fn, nn.modules.loss._Loss):
        raise TypeError(f"the debugger needs a loss module such as nn.CrossEntropyLoss, got {loss_fn!r}")
    for module in model.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    hook.register_module(model)
    hook.register_loss(loss_fn)


def detach(hook, model: nn.Module, loss_fn: nn.Module) -> None:
    """Remove `hook`'s forward (pre-)hooks from every module (torch keeps them in these dicts)."""
    for module in (*model.modules(), loss_fn):
        for hooks in (module._forward_hooks, module._forward_pre_hooks):
            for key, fn in list(hooks.items()):
                if getattr(fn, "__self__", None) is hook:
                    del hooks[key]
