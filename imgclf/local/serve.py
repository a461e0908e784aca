"""`imgclf local serve MODEL_TAR_OR_DIR` or `imgclf local serve --version N`: serve an existing
model, or an approved version of the local registry (imgclf/local/registry.py), in the Ray Serve
container, behind a local endpoint and front door, with the container environment and the front
door environment the config gives the deployed ones."""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, nargs="?", help="a model.tar.gz or an extracted model dir")
    parser.add_argument("--version", type=int, help="serve this approved version of the local registry instead")
    parser.add_argument("--registry", type=Path, default=Path("runs") / "registry",
                        help="the local registry (default %(default)s)")
    parser.add_argument("--config", type=Path, help="JSON config file (endpoint name, top-k, body limit)")
    parser.add_argument("--port", type=int, default=8080, help="front door port, 0 = any free (default %(default)s)")
    parser.add_argument("--endpoint-port", type=int, default=0, help="endpoint port (default any free)")


def run(args: argparse.Namespace) -> int:
    from imgclf.errors import UserError
    from imgclf.local.deploy import model_environment, serve_until_stopped, start_container
    from imgclf.local.endpoint import model_dir_from
    from infra.config import ConfigError, load_config, read_config_file

    try:
        cfg = load_config(read_config_file(args.config) if args.config else None)
    except ConfigError as err:
        raise UserError(str(err)) from None
    model = _model(args)
    # Kept when serving fails: the error names the container's log in it.
    work = Path(tempfile.mkdtemp(prefix="imgclf-serve-"))
    model_dir = model_dir_from(model, work / "model")
    container = start_container(cfg, model_dir, model_environment(cfg, model), work)
    if args.version is not None:
        from imgclf.local import registry

        registry.mark_serving(args.registry.resolve(), args.version)
    code = serve_until_stopped(container, cfg, work, args.port, args.endpoint_port)
    shutil.rmtree(work, ignore_errors=True)
    return code


def _model(args: argparse.Namespace) -> Path:
    """The model to serve: the path given, or the approved version's."""
    from imgclf.errors import UserError
    from imgclf.local import registry

    if (args.model is None) == (args.version is None):
        raise UserError("give either a model (model.tar.gz or model dir) or --version N")
    if args.model is not None:
        return args.model.resolve()
    return registry.approved_model(args.registry.resolve(), args.version)
