"""Synthesized templates, one per config variant, made in-process once per session (jsii starts
slowly; each synth takes seconds). Every config switch value appears in at least one variant."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from stack_samples import REGION, VARIANTS, Synth, load_app

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("CDK_DISABLE_VERSION_CHECK", "1")

class _Synthesizer:
    def __init__(self, root: Path) -> None:
        self.root, self.done = root, {}

    def __call__(self, variant: str) -> Synth:
        if variant not in self.done:
            build_app = load_app().build_app
            outdir = self.root / variant
            app = build_app({"imgclf": VARIANTS[variant], "region": REGION}, str(outdir))
            stack = app.node.children[0]
            assembly = app.synth()
            template = assembly.get_stack_by_name(stack.stack_name).template
            self.done[variant] = Synth(variant, stack.cfg, template, outdir)
        return self.done[variant]


@pytest.fixture(scope="session")
def synthesize(tmp_path_factory) -> _Synthesizer:
    """`synthesize(variant) -> Synth`, each variant synthesized (and cdk-nag checked) once."""
    return _Synthesizer(tmp_path_factory.mktemp("cdk"))


@pytest.fixture(scope="session")
def default(synthesize) -> Synth:
    return synthesize("default")


@pytest.fixture(scope="session")
def realtime(synthesize) -> Synth:
    return synthesize("realtime")
