"""The typed config: cheap working defaults, and a bad value names its field and what is allowed."""
from __future__ import annotations

import json

import pytest

from infra.config import ConfigError, config_from_context, load_config, read_config_file


def test_defaults_deploy_a_cheap_pipeline():
    cfg = load_config()
    assert (cfg.training.spot, cfg.endpoint.mode, cfg.api.auth, cfg.debugger.mode) == (
        True, "serverless", "api_key", "portable")
    assert (cfg.tuning.lr_min, cfg.tuning.lr_max, cfg.tuning.batch_sizes) == (1e-4, 1e-2, (32, 64, 128))


def test_a_bad_value_names_the_field_and_the_value():
    with pytest.raises(ConfigError) as err:
        load_config({"training": {"instance_type": "m5.large"}})
    assert "training.instance_type" in str(err.value) and "'m5.large'" in str(err.value)


def test_an_unknown_field_is_refused():
    with pytest.raises(ConfigError, match="endpoint.memory"):
        load_config({"endpoint": {"memory": 2048}})


def test_a_value_outside_a_choice_lists_the_choices():
    with pytest.raises(ConfigError, match="'portable', 'managed' or 'off'"):
        load_config({"debugger": {"mode": "on"}})


def test_lr_min_must_be_below_lr_max():
    with pytest.raises(ConfigError, match="lr_min"):
        load_config({"tuning": {"lr_min": 0.1, "lr_max": 0.01}})


def test_parallel_jobs_may_not_exceed_max_jobs():
    with pytest.raises(ConfigError, match="max_parallel_jobs"):
        load_config({"tuning": {"max_jobs": 2, "max_parallel_jobs": 3}})


def test_repeated_batch_sizes_are_refused():
    with pytest.raises(ConfigError, match="batch_sizes must not repeat"):
        load_config({"tuning": {"batch_sizes": [32, 32]}})


def test_grid_search_is_refused_because_lr_is_continuous():
    with pytest.raises(ConfigError, match="Grid.*categorical"):
        load_config({"tuning": {"strategy": "Grid"}})


def test_hyperband_needs_early_stopping_off():
    with pytest.raises(ConfigError, match="Hyperband.*early_stopping 'Off'"):
        load_config({"tuning": {"strategy": "Hyperband"}})
    assert load_config({"tuning": {"strategy": "Hyperband", "early_stopping": "Off"}}).tuning.strategy == "Hyperband"


def test_spot_needs_a_wait_at_least_the_runtime():
    with pytest.raises(ConfigError, match="max_wait_seconds"):
        load_config({"training": {"spot": True, "max_runtime_seconds": 7200, "max_wait_seconds": 3600}})


def test_a_random_backbone_must_be_trained_whole():
    with pytest.raises(ConfigError, match="unfreeze='all'"):
        load_config({"training": {"pretrained": "none", "unfreeze": "last"}})


def test_pretrained_channel_needs_a_weights_uri():
    with pytest.raises(ConfigError, match="pretrained_s3_uri"):
        load_config({"training": {"pretrained": "channel"}})


def test_network_isolation_cannot_download_imagenet_weights():
    with pytest.raises(ConfigError, match="network_isolation"):
        load_config({"training": {"network_isolation": True}})


def test_network_isolation_needs_a_training_image_that_holds_the_trainers_requirements():
    isolated = {"network_isolation": True, "pretrained": "none", "unfreeze": "all"}
    with pytest.raises(ConfigError, match="network_isolation needs training_image: .*requirements.txt"):
        load_config({"training": isolated})
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/trainer:1"
    assert load_config({"training": isolated, "training_image": image}).training.network_isolation


def test_an_isolated_retrain_serves_fp32_since_it_cannot_download_the_serving_runtime():
    isolated = {"training": {"network_isolation": True, "pretrained": "none", "unfreeze": "all"},
                "training_image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/trainer:1"}
    assert load_config({}).endpoint.optimize == "int8"
    assert load_config(isolated).endpoint.optimize == "none"
    assert load_config(isolated, {"endpoint": {"mode": "realtime"}}).endpoint.optimize == "none"
    with pytest.raises(ConfigError, match="endpoint.optimize 'int8' ships ONNX Runtime .* network-isolated retrain cannot download it"):
        load_config(isolated, {"endpoint": {"optimize": "int8"}})
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/server:1"
    with pytest.raises(ConfigError, match="endpoint.optimize 'graph'"):
        load_config(isolated, {"inference_image": image, "endpoint": {"optimize": "graph"}})


def test_serverless_memory_must_be_a_serverless_size():
    with pytest.raises(ConfigError, match="endpoint.memory_mb"):
        load_config({"endpoint": {"memory_mb": 1500}})


def test_dataset_prefix_loses_surrounding_slashes():
    assert load_config({"dataset_prefix": "/datasets/pets/"}).dataset_prefix == "datasets/pets"


def test_later_sources_win_and_nested_sections_merge():
    cfg = load_config({"training": {"epochs": 3, "spot": False}}, {"training": {"epochs": 9}})
    assert (cfg.training.epochs, cfg.training.spot) == (9, False)


def test_context_overrides_the_config_file(tmp_path):
    path = tmp_path / "imgclf.json"
    path.write_text(json.dumps({"name": "fromfile", "training": {"epochs": 2}}))
    cfg = config_from_context({"training": {"epochs": 4}}, path)
    assert (cfg.name, cfg.training.epochs) == ("fromfile", 4)


def test_the_cdk_clis_string_context_is_parsed_as_json():
    """`cdk deploy -c imgclf='{...}'` hands app.py a string, not an object."""
    cfg = config_from_context('{"training": {"epochs": 3}, "endpoint": {"mode": "realtime"}}')
    assert (cfg.training.epochs, cfg.endpoint.mode) == (3, "realtime")


def test_a_string_context_that_is_not_json_is_a_clear_error():
    with pytest.raises(ConfigError, match="context imgclf is not valid JSON"):
        config_from_context("{endpoint: realtime}")


def test_a_name_with_a_dash_is_refused_so_iam_prefixes_stay_unambiguous():
    with pytest.raises(ConfigError, match="name"):
        load_config({"name": "imgclf-dev"})


def test_a_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        read_config_file(tmp_path / "nope.json")


def test_a_config_file_that_is_not_json_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{name: imgclf")
    with pytest.raises(ConfigError, match="not valid JSON"):
        read_config_file(path)


def test_a_config_file_must_hold_an_object(tmp_path):
    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="JSON object"):
        read_config_file(path)


def test_a_source_that_is_not_an_object_is_a_clear_error():
    with pytest.raises(ConfigError, match="expected an object"):
        load_config(["epochs", 3])


def test_the_config_reference_in_the_docs_lists_every_field_with_its_default():
    from pathlib import Path

    from infra.config import reference_table

    doc = (Path(__file__).resolve().parents[2] / "docs" / "infrastructure.md").read_text()
    assert reference_table() in doc


def test_rule_parameters_for_an_unknown_rule_fail_with_the_field_name():
    with pytest.raises(ConfigError, match=r"debugger\.rule_parameters.*unknown rule 'Overfitting'"):
        load_config({"debugger": {"rule_parameters": {"Overfitting": {"patience": 2}}}})


def test_rule_parameters_with_an_unknown_parameter_fail():
    with pytest.raises(ConfigError, match="has no parameter 'patients'"):
        load_config({"debugger": {"rule_parameters": {"Overfit": {"patients": 2}}}})
