"""The front-door Lambda's asset (infra/frontdoor_bundle.py): the front door and Powertools, built offline."""
from __future__ import annotations

import re
from importlib import metadata

import pytest
from packaging.requirements import Requirement

from infra.frontdoor_bundle import DISTRIBUTIONS, RUNTIME_PROVIDED, BundleError, build_frontdoor_bundle


def _runtime_requirements(name: str, extras: frozenset[str] = frozenset()) -> set[str]:
    """`name` and what it needs at run time, down to what the Lambda runtime provides."""
    found = {name}
    for raw in metadata.requires(name) or ():
        req = Requirement(raw)
        wanted = not req.marker or any(req.marker.evaluate({"extra": e}) for e in extras or {""})
        dep = re.sub(r"[-_.]+", "-", req.name).lower()
        if wanted and dep not in RUNTIME_PROVIDED and dep not in found:
            found |= _runtime_requirements(dep)
    return found


def test_the_bundle_carries_everything_powertools_and_its_tracer_import():
    assert _runtime_requirements("aws-lambda-powertools", frozenset({"tracer"})) == set(DISTRIBUTIONS)


def test_a_distribution_that_is_not_pure_python_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr("infra.frontdoor_bundle.DISTRIBUTIONS", ("pydantic-core",))
    with pytest.raises(BundleError, match="pydantic-core .* is not pure Python"):
        build_frontdoor_bundle(tmp_path / "asset")


def test_a_missing_distribution_names_the_install_step(tmp_path, monkeypatch):
    monkeypatch.setattr("infra.frontdoor_bundle.DISTRIBUTIONS", ("not-installed-anywhere",))
    with pytest.raises(BundleError, match="pip install -r requirements.txt"):
        build_frontdoor_bundle(tmp_path / "asset")
