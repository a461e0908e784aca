"""`imgclf`: the operator CLI.

Each command lives in its own module with `add_arguments(parser)` and `run(args) -> int`; this
file only wires them. Only the chosen command's module is imported (its arguments are added to
its own sub-parser alone), so `--help` and each command stay fast and independent of the others.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from imgclf.errors import UserError

#: (command words, module, one-line help)
COMMANDS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("data", "prepare"), "imgclf.data_prepare", "split a folder of class sub-folders into train/valid/test"),
    (("data", "demo"), "imgclf.demo_data", "generate the offline demo dataset"),
    (("local", "run"), "imgclf.local.run", "run the whole pipeline on this machine"),
    (("local", "serve"), "imgclf.local.serve", "serve a trained model behind a local endpoint and front door"),
    (("start",), "imgclf.cloud.start", "start an execution of the deployed state machine"),
    (("status",), "imgclf.cloud.status", "follow a state-machine execution"),
    (("models", "list"), "imgclf.cloud.models", "the registered model versions, their approval, test accuracy and which serves"),
    (("models", "approve"), "imgclf.cloud.models", "approve a model version (with manual approval, this deploys it)"),
    (("models", "reject"), "imgclf.cloud.models", "reject a model version"),
    (("rollback",), "imgclf.cloud.rollback", "deploy an approved model version again (default: the previous one)"),
    (("predict",), "imgclf.predict", "POST an image to a front door (local or cloud) and print the top-k"),
    (("monitor", "report"), "imgclf.monitor", "compare captured predictions with the model's baseline: PSI, verdict, Markdown + PNG"),
)


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """The parser for `argv`: every command listed, only the one `argv` names given its arguments."""
    parser = argparse.ArgumentParser(prog="imgclf", description=__doc__.splitlines()[0])
    groups: dict[str, argparse._SubParsersAction] = {}
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for words, module, help_text in COMMANDS:
        if len(words) == 1:
            sub = top.add_parser(words[0], help=help_text, description=help_text)
        else:
            if words[0] not in groups:
                group = top.add_parser(words[0], help=f"{words[0]} commands")
                groups[words[0]] = group.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
            sub = groups[words[0]].add_parser(words[1], help=help_text, description=help_text)
        sub.set_defaults(_module=module)
        if tuple(argv[: len(words)]) == words:
            importlib.import_module(module).add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except UserError as err:
        print(f"imgclf: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("imgclf: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
