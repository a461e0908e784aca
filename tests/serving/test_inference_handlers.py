"""imgclf_serving/inference.py called directly: model loading, the response, top-k, Accept."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

import hostile_corpus as corpus
from model_dirs import CLASSES
from imgclf_serving import inference
from imgclf_serving.errors import InvalidParameter, ModelFileError, NotAcceptable


class _Headers:
    """A request context that carries headers, as the model server's does."""

    def __init__(self, headers):
        self.request_processor = [self]
        self._headers = headers

    def get_request_properties(self):
        return self._headers


@pytest.fixture(scope="module")
def model(model_dir):
    return inference.model_fn(str(model_dir))


@pytest.fixture
def broken_model_dir(model_dir, tmp_path):
    """A copy of the model dir (weights linked, not copied) to damage one file at a time."""
    copy = tmp_path / "model"
    copy.mkdir()
    for name in ("classes.json", "model-meta.json"):
        shutil.copy2(model_dir / name, copy / name)
    (copy / "model.pth").symlink_to(model_dir / "model.pth")
    return copy


def predict(model, body, content_type="image/jpeg", accept="application/json", context=None):
    image = inference.input_fn(body, content_type)
    prediction = inference.predict_fn(image, model)
    payload, content_type = inference.output_fn(prediction, accept, context)
    assert content_type == "application/json"
    return json.loads(payload)


def test_model_fn_loads_classes_meta_and_an_eval_mode_network(model):
    assert model.classes == CLASSES
    assert model.meta["image_size"] == 32
    assert not model.network.training


def test_answer_has_top_3_labels_and_the_model_name_and_version(model):
    answer = predict(model, corpus.jpeg())
    assert answer["model"] == {"name": "resnet50", "version": "test-1"}
    assert answer["top_k"] == 3
    assert {p["label"] for p in answer["predictions"]} == set(CLASSES)


def test_scores_over_all_classes_sum_to_one_and_are_sorted(model):
    scores = [p["score"] for p in predict(model, corpus.png())["predictions"]]
    assert sum(scores) == pytest.approx(1.0, abs=1e-4)
    assert scores == sorted(scores, reverse=True)


def test_prediction_matches_the_shared_eval_transform_and_forward(model):
    from imgclf_serving.preprocess import eval_transform

    image = corpus.photo().convert("RGB")
    with torch.no_grad():
        expected = torch.softmax(model.network(eval_transform(32)(image).unsqueeze(0)), dim=1)[0]
    got = inference.predict_fn(inference.input_fn(corpus.png(), "image/png"), model).probabilities
    assert torch.allclose(got, expected, atol=1e-5)


def test_top_k_comes_from_the_custom_attributes_header(model):
    context = _Headers({"X-Amzn-SageMaker-Custom-Attributes": "trace=abc; top_k=1"})
    assert len(predict(model, corpus.jpeg(), context=context)["predictions"]) == 1


def test_top_k_comes_from_a_plain_header_mapping_as_ray_serve_passes_it(model):
    headers = {"content-type": "image/jpeg", "x-amzn-sagemaker-custom-attributes": "top_k=2"}
    assert len(predict(model, corpus.jpeg(), context=headers)["predictions"]) == 2


def test_a_batch_predicts_what_each_image_alone_predicts(model):
    images = [inference.input_fn(body, "application/octet-stream")
              for body in (corpus.jpeg(), corpus.png("coffee"), corpus.palette_gif())]
    batched = inference.predict_batch_fn(images, model)
    assert len(batched) == 3
    for image, prediction in zip(images, batched, strict=True):
        assert torch.allclose(prediction.probabilities, inference.predict_fn(image, model).probabilities, atol=1e-5)


def test_top_k_above_the_class_count_is_capped(model):
    context = _Headers({"x-amzn-sagemaker-custom-attributes": "top_k=50"})
    assert predict(model, corpus.jpeg(), context=context)["top_k"] == len(CLASSES)


def test_invalid_top_k_attribute_is_a_400(model):
    context = _Headers({"X-Amzn-SageMaker-Custom-Attributes": "top_k=0"})
    with pytest.raises(InvalidParameter, match="positive integer"):
        predict(model, corpus.jpeg(), context=context)


def test_top_k_env_var_sets_the_default(model_dir, monkeypatch):
    monkeypatch.setenv("TOP_K", "2")
    assert len(predict(inference.model_fn(str(model_dir)), corpus.jpeg())["predictions"]) == 2


def test_accept_other_than_json_is_406(model):
    with pytest.raises(NotAcceptable) as raised:
        predict(model, corpus.jpeg(), accept="text/csv")
    assert raised.value.status_code == 406


@pytest.mark.parametrize("missing", ["model.pth", "classes.json", "model-meta.json"])
def test_missing_model_file_is_named(broken_model_dir, missing):
    (broken_model_dir / missing).unlink()
    with pytest.raises(ModelFileError, match=missing):
        inference.model_fn(str(broken_model_dir))


def test_class_count_that_disagrees_with_meta_names_both_files(broken_model_dir):
    (broken_model_dir / "classes.json").write_text(json.dumps(["a", "b"]))
    with pytest.raises(ModelFileError, match="classes.json has 2 labels but model-meta.json"):
        inference.model_fn(str(broken_model_dir))


def test_weights_for_another_head_size_name_model_pth(broken_model_dir):
    (broken_model_dir / "classes.json").write_text(json.dumps(["a", "b", "c", "d"]))
    meta = json.loads((broken_model_dir / "model-meta.json").read_text())
    (broken_model_dir / "model-meta.json").write_text(json.dumps({**meta, "num_classes": 4}))
    with pytest.raises(ModelFileError, match=r"model.pth does not match .* fc.weight"):
        inference.model_fn(str(broken_model_dir))


def test_pickled_module_instead_of_state_dict_is_refused(broken_model_dir):
    (broken_model_dir / "model.pth").unlink()
    torch.save(torch.nn.Linear(2, 2), broken_model_dir / "model.pth")
    with pytest.raises(ModelFileError, match="model.pth is not a loadable state_dict"):
        inference.model_fn(str(broken_model_dir))


def test_meta_without_image_size_is_named(broken_model_dir):
    meta = json.loads((broken_model_dir / "model-meta.json").read_text())
    del meta["image_size"]
    (broken_model_dir / "model-meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="model-meta.json lacks image_size"):
        inference.model_fn(str(broken_model_dir))
