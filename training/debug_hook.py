"""The smdebug hook: SageMaker's when the job carries a DebugHookConfig, else our own.

smdebug 1.0.34 works on torch 2.x for what we use (module/loss hooks, parameter gradient hooks,
the trial reader). The compatibility points are handled here, at the narrowest place:
- `create_from_json_file()` raises FileNotFoundError when no debughookconfig.json exists (any run
  outside a configured SageMaker job), so we check for the file first and build the hook ourselves.
- smdebug has no way to unregister its module hooks, so a model evaluated after `close()` (the
  test split) would keep writing EVAL tensors into the judged trial. `detach` removes the hook's
  forward hooks from the modules.
- smdebug records a module's inputs in a forward *post* hook. torchvision's ReLUs are
  `inplace=True`, so by then the "input" has been overwritten with the output (no negatives): the
  relu_input collection would hold ReLU outputs. `attach` turns in-place off on every nn.ReLU
  (same numbers, one extra activation buffer per ReLU call).
- A resumed job writes on into the trial of the interrupted one, so that the rules judge the whole
  run. smdebug refuses a trial dir that holds its end-of-training file, writes nothing when
  another process's claim file is there (the interrupted process left it), and numbers steps
  from 0 again: `create_hook(resume=True)` removes those two files and continues the step
  counters from the trial's last saved step.
"""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from smdebug.core.modes import ModeKeys
from torch import nn

from training.debugger_collections import collection_configurations

#: Where SageMaker writes the hook config when the job has a DebugHookConfig (smdebug's default).
SAGEMAKER_HOOK_CONFIG = Path("/opt/ml/input/config/debughookconfig.json")
#: smdebug's override of that path.
HOOK_CONFIG_ENV = "SMDEBUG_CONFIG_FILE_PATH"
#: Where a trial keeps its collections file (smdebug's layout).
COLLECTIONS_DIR = "collections"


def hook_config_path() -> Path | None:
    """The managed hook config if this run has one, else None."""
    path = Path(os.environ.get(HOOK_CONFIG_ENV) or SAGEMAKER_HOOK_CONFIG)
    return path if path.is_file() else None


def create_hook(out_dir: Path, save_interval: int, rule_params: dict | None = None, resume: bool = False):
    """A PyTorch smdebug hook. From the managed JSON config when present (it names its own out
    dir); otherwise ours, saving `collection_configurations()` to `out_dir`: a fresh trial, or
    with `resume` the interrupted run's trial continued."""
    import smdebug.pytorch as smd
    from smdebug.core.json_config import add_collections_to_manager

    config = hook_config_path()
    if config is not None:
        return smd.Hook.create_from_json_file(str(config))
    out_dir = Path(out_dir)
    last_steps = _reopen_trial(out_dir) if resume else None
    if last_steps is None and out_dir.exists():  # a fresh start, or nothing readable to continue
        shutil.rmtree(out_dir)
    configurations = collection_configurations(save_interval, rule_params)
    with _no_checkpoint_watch():
        hook = smd.Hook(out_dir=str(out_dir), include_collections=[c["CollectionName"] for c in configurations],
                        export_tensorboard=False)
    # smdebug's own parser of a managed config's collections (regexes, save windows, reductions),
    # so both modes read the same configuration alike
    add_collections_to_manager(hook.collection_manager, {"CollectionConfigurations": configurations},
                               {"save_config_modes": None})
    if last_steps:
        hook.step = last_steps[ModeKeys.GLOBAL]
        hook.mode_steps = dict(last_steps)
    return hook


@contextmanager
def _no_checkpoint_watch():
    """Build our hook without smdebug's StateStore. In a job with a CheckpointConfig SageMaker
    writes checkpointconfig.json, and smdebug would then walk the whole checkpoint dir (where our
    trial lives, growing every step), log every file's timestamp and rewrite metadata.json there
    after every step, and restore step numbers from that file even on a fresh start.
    `_reopen_trial` is our one resume path; a hook built with no config file leaves the dir alone."""
    from smdebug.core.config_constants import CHECKPOINT_CONFIG_FILE_PATH_ENV_VAR

    previous = os.environ.get(CHECKPOINT_CONFIG_FILE_PATH_ENV_VAR)
    os.environ[CHECKPOINT_CONFIG_FILE_PATH_ENV_VAR] = os.path.join(os.devnull, "no-checkpoint-config.json")
    try:
        yield
    finally:
        if previous is None:
            del os.environ[CHECKPOINT_CONFIG_FILE_PATH_ENV_VAR]
        else:
            os.environ[CHECKPOINT_CONFIG_FILE_PATH_ENV_VAR] = previous


def _reopen_trial(out_dir: Path) -> dict | None:
    """Make an interrupted run's trial writable again; {mode: last saved step} (GLOBAL included),
    None when it saved nothing readable (no collections file: smdebug's reader would wait for one
    forever). Losses are saved every step, so the last saved step is the last step the
    interrupted run took."""
    from smdebug.core.access_layer.utils import END_OF_JOB_FILENAME
    from smdebug.core.config_constants import CLAIM_FILENAME
    from smdebug.trials import create_trial

    if not (out_dir / COLLECTIONS_DIR).is_dir():
        return None
    for name in (END_OF_JOB_FILENAME, CLAIM_FILENAME):
        (out_dir / name).unlink(missing_ok=True)
    trial = create_trial(str(out_dir))
    steps = {mode: trial.steps(mode=mode) for mode in (ModeKeys.GLOBAL, ModeKeys.TRAIN, ModeKeys.EVAL)}
    last = {mode: saved[-1] for mode, saved in steps.items() if saved}
    return last or None


def flush(hook) -> None:
    """Write the finished step's files now (smdebug does it when the next step starts), and the
    collections file after the first step (smdebug writes it at close, and a trial without it
    cannot be read), so that a job stopped or killed after a step keeps that step in the trial."""
    hook._close_writers()
    if not (Path(hook.out_dir) / COLLECTIONS_DIR).is_dir():
        hook.export_collections()


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
