"""`imgclf local run`'s flags are config overrides: they change the requests, never a second copy
of a value. `--demo` is the README's first command, so its config must load and be cheap."""
from __future__ import annotations

import argparse
import json

import pytest

from imgclf.errors import UserError
from imgclf.local.run import DEMO_OVERRIDES, add_arguments, build_config
from infra.config import load_config


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_flags_override_the_config_file(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"training": {"epochs": 7}, "tuning": {"max_jobs": 5}}))
    cfg = build_config(_args("--data", "x", "--config", str(tmp_path / "c.json"), "--epochs", "3", "--image-size", "48"))
    assert (cfg.training.epochs, cfg.training.image_size, cfg.tuning.max_jobs) == (3, 48, 5)


def test_fewer_trials_than_parallel_jobs_lowers_the_parallel_jobs():
    cfg = build_config(_args("--data", "x", "--trials", "1"))
    assert (cfg.tuning.max_jobs, cfg.tuning.max_parallel_jobs) == (1, 1)


def test_a_bad_flag_value_is_a_user_error_naming_the_field():
    with pytest.raises(UserError, match="image_size"):
        build_config(_args("--data", "x", "--image-size", "3"))


def test_the_demo_config_is_the_defaults_plus_the_demo_overrides():
    cfg = build_config(_args("--demo"))
    assert cfg == load_config(None, DEMO_OVERRIDES)
    assert cfg.training.pretrained == "none"  # nothing is downloaded
    assert cfg.tuning.max_jobs * cfg.training.epochs <= 6  # a few minutes on 2 cores
    assert cfg.gate.min_test_accuracy == load_config().gate.min_test_accuracy


def test_demo_flags_still_override_the_demo_defaults():
    cfg = build_config(_args("--demo", "--trials", "2", "--parallel", "1"))
    assert (cfg.tuning.max_jobs, cfg.tuning.max_parallel_jobs) == (2, 1)
