"""aichain_node.export: scikit-learn models exported to ONNX run in `Session` and give the model's own answers;
a missing library is an `ExportUnavailable` naming the extra to install."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from aichain_node.export import ExportUnavailable, sklearn_to_onnx, torch_to_onnx
from aichain_node.inference import Session
from core.errors import AichainError

N_FEATURES = 5


def features(rows: int, seed: int = 0) -> np.ndarray:
    """Float32 inputs rounded to 2 decimals: the ONNX model reads float32, and values far apart from each
    other keep tree split thresholds (midpoints) away from the inputs, so both sides take the same branches."""
    return np.round(np.random.default_rng(seed).normal(size=(rows, N_FEATURES)), 2).astype(np.float32)


def classes_of(x: np.ndarray) -> np.ndarray:
    score = x[:, 0] + 0.5 * x[:, 1] - x[:, 2]
    return np.digitize(score, [-0.5, 0.5])  # three classes: 0, 1, 2


def run(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    session = Session(path)
    return session.run(session.feed(x))


def test_linear_regression_exported_runs_in_session_and_matches_predict(tmp_path: Path) -> None:
    x = features(200)
    y = x @ np.array([1.5, -2.0, 0.25, 3.0, -0.5]) + 0.7
    model = LinearRegression().fit(x, y)

    path = sklearn_to_onnx(model, x, tmp_path / "linear.onnx")

    assert path == tmp_path / "linear.onnx" and path.is_file()
    session = Session(path)
    assert session.input_names == ["x"]
    test = features(50, seed=1)
    (out,) = session.run(session.feed(test)).values()
    np.testing.assert_allclose(out.reshape(-1), model.predict(test), rtol=1e-4, atol=1e-4)


def test_logistic_regression_gives_label_and_probability_tensors_matching_predict_proba(tmp_path: Path) -> None:
    x = features(300)
    model = LogisticRegression(max_iter=1000).fit(x, classes_of(x))

    path = sklearn_to_onnx(model, N_FEATURES, tmp_path / "logistic.onnx")

    test = features(60, seed=2)
    outputs = run(path, test)
    assert set(outputs) == {"label", "probabilities"}  # plain tensors, no ZipMap of per-row dicts
    assert outputs["probabilities"].dtype == np.float32 and outputs["probabilities"].shape == (60, 3)
    np.testing.assert_allclose(outputs["probabilities"], model.predict_proba(test), atol=1e-5)
    np.testing.assert_array_equal(outputs["label"], model.predict(test))


def test_random_forest_exported_matches_predict_and_predict_proba(tmp_path: Path) -> None:
    x = features(300)
    model = RandomForestClassifier(n_estimators=3, max_depth=4, random_state=0).fit(x, classes_of(x))

    path = sklearn_to_onnx(model, x[:1], tmp_path / "forest.onnx")

    test = features(80, seed=3)
    outputs = run(path, test)
    assert outputs["probabilities"].dtype != object
    np.testing.assert_allclose(outputs["probabilities"], model.predict_proba(test), atol=1e-5)
    np.testing.assert_array_equal(outputs["label"], model.predict(test))


def test_classifier_pipeline_exports_plain_probability_tensor(tmp_path: Path) -> None:
    x = features(300)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, classes_of(x))

    outputs = run(sklearn_to_onnx(model, x, tmp_path / "pipeline.onnx"), x[:40])

    np.testing.assert_allclose(outputs["probabilities"], model.predict_proba(x[:40]), atol=1e-5)
    np.testing.assert_array_equal(outputs["label"], model.predict(x[:40]))


def test_exported_model_takes_any_batch_size(tmp_path: Path) -> None:
    x = features(100)
    model = LinearRegression().fit(x, x[:, 0] - x[:, 1])
    path = sklearn_to_onnx(model, x, tmp_path / "model.onnx")

    for rows in (1, 7, 100):
        (out,) = run(path, x[:rows]).values()
        assert out.shape[0] == rows


def test_sample_with_another_feature_count_than_the_model_is_refused(tmp_path: Path) -> None:
    x = features(50)
    model = LinearRegression().fit(x, x[:, 0])

    with pytest.raises(ValueError, match="fitted on 5 features, the sample has 3"):
        sklearn_to_onnx(model, 3, tmp_path / "model.onnx")
    with pytest.raises(ValueError, match="shape"):
        sklearn_to_onnx(model, x.reshape(5, 10, 5), tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()


def test_missing_skl2onnx_raises_export_unavailable_naming_the_sklearn_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = LinearRegression().fit(features(20), np.arange(20.0))
    monkeypatch.setitem(sys.modules, "skl2onnx", None)  # `import skl2onnx` now raises ImportError

    with pytest.raises(ExportUnavailable) as caught:
        sklearn_to_onnx(model, N_FEATURES, tmp_path / "model.onnx")

    assert isinstance(caught.value, AichainError)
    message = str(caught.value)
    assert "pip install 'aichain-node[sklearn]'" in message and "skl2onnx" in message
    assert "\n" not in message
    assert not (tmp_path / "model.onnx").exists()


def test_missing_torch_raises_export_unavailable_naming_the_torch_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)

    with pytest.raises(ExportUnavailable) as caught:
        torch_to_onnx(object(), object(), tmp_path / "model.onnx")  # type: ignore[arg-type]

    message = str(caught.value)
    assert "pip install 'aichain-node[torch]'" in message and "torch" in message
    assert "\n" not in message
    assert not (tmp_path / "model.onnx").exists()
