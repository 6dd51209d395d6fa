"""eqprop.sklearn.EqPropClassifier: scikit-learn's estimator checks, and use in Pipeline / GridSearchCV / CV."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from eqprop import Conv2d
from eqprop.sklearn import EqPropClassifier

#: A small, quick configuration for the digits tests (64-50-10, 5 epochs: about 0.05 s a fit).
QUICK = dict(hidden_layer_sizes=(50,), learning_rates=(0.4, 0.2), epochs=5, threads=1, random_state=0)


def expected_failed_checks(estimator) -> dict[str, str]:
    """Checks EqPropClassifier is known to fail, with the reason: none.

    (Without pandas installed, scikit-learn itself skips
    ``check_classifier_data_not_an_array``'s DataFrame part, and without
    ``SCIPY_ARRAY_API=1`` the array-API check; neither is a failure of ours.)
    """
    return {}


@parametrize_with_checks(
    [
        EqPropClassifier(threads=1),
        EqPropClassifier(hidden_layer_sizes=(32,), solver="alternating", beta=0.5, free_steps=8, nudged_steps=4,
                         symmetric=True, persistent=False, epochs=30, dtype="float64", threads=1),
    ],
    expected_failed_checks=expected_failed_checks,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return x[:900], y[:900], x[900:1300], y[900:1300]


def test_fit_predict_on_digits_learns(digits):
    x, y, x_test, y_test = digits
    clf = EqPropClassifier(**QUICK).fit(x, y)
    assert clf.n_features_in_ == 64 and clf.classes_.tolist() == list(range(10))
    assert clf.network_.sizes == (64, 50, 10) and clf.n_iter_ == 5 and len(clf.trainer_.history) == 5
    assert clf.score(x_test, y_test) > 0.85  # 5 epochs of a small network already learn the digits


def test_predict_proba_is_the_normalised_output(digits):
    x, y, x_test, _ = digits
    clf = EqPropClassifier(**QUICK).fit(x, y)
    proba = clf.predict_proba(x_test)
    assert proba.dtype == np.float64 and proba.shape == (len(x_test), 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (proba >= 0).all()
    trainer = clf.trainer_
    outputs = clf.network_.relax(clf._scaled(x_test.astype(float)), steps=trainer.eval_steps,
                                 epsilon=trainer.epsilon)[-1].astype(float)
    rows = outputs.sum(axis=1) > 0
    np.testing.assert_allclose(proba[rows], outputs[rows] / outputs[rows].sum(axis=1, keepdims=True))
    np.testing.assert_array_equal(clf.predict(x_test), clf.classes_[proba.argmax(axis=1)])


def test_string_labels_and_any_label_set(digits):
    x, y, x_test, y_test = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    clf = EqPropClassifier(**QUICK).fit(x, names[y])
    assert set(clf.classes_) == set(names)
    predicted = clf.predict(x_test)
    assert predicted.dtype.kind == "U" and set(predicted) <= set(names)
    reference = EqPropClassifier(**QUICK).fit(x, y)
    # the same network up to the order of the output units: same accuracy give or take a few examples
    assert abs(clf.score(x_test, names[y_test]) - reference.score(x_test, y_test)) < 0.1


def test_same_random_state_gives_the_same_model_and_pickles(digits):
    x, y, x_test, _ = digits
    first = EqPropClassifier(**QUICK).fit(x, y)
    second = clone(first).fit(x, y)
    np.testing.assert_array_equal(first.predict_proba(x_test), second.predict_proba(x_test))
    restored = pickle.loads(pickle.dumps(first))
    np.testing.assert_array_equal(restored.predict_proba(x_test), first.predict_proba(x_test))
    restored.partial_fit(x[:100], y[:100])  # the restored parameters are writeable
    other = EqPropClassifier(**{**QUICK, "random_state": 1}).fit(x, y)
    assert not np.array_equal(other.predict_proba(x_test), first.predict_proba(x_test))


def test_pipeline_with_a_scaler(digits):
    x, y, x_test, y_test = digits
    pipe = make_pipeline(MinMaxScaler(), EqPropClassifier(**QUICK, scale_inputs=False)).fit(x, y)
    assert pipe.score(x_test, y_test) > 0.8
    # the built-in scaling is the same min-max map, so the same model comes out
    direct = EqPropClassifier(**QUICK).fit(x, y)
    np.testing.assert_allclose(pipe.predict_proba(x_test), direct.predict_proba(x_test), atol=1e-5)


def test_grid_search_and_cross_val_score(digits):
    x, y, _, _ = digits
    search = GridSearchCV(
        EqPropClassifier(**QUICK),
        {"beta": [0.5, 1.0], "hidden_layer_sizes": [(30,), (60,)]}, cv=3,
    ).fit(x, y)
    assert search.best_params_["beta"] in (0.5, 1.0) and search.best_score_ > 0.7
    assert search.best_estimator_.network_.sizes[1] == search.best_params_["hidden_layer_sizes"][0]
    scores = cross_val_score(EqPropClassifier(**QUICK), x, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.75


def test_partial_fit_continues_training(digits):
    x, y, x_test, y_test = digits
    clf = EqPropClassifier(**QUICK)
    with pytest.raises(ValueError, match="classes must be given"):
        clf.partial_fit(x[:100], y[:100])
    for start in range(0, 900, 300):
        clf.partial_fit(x[start:start + 300], y[start:start + 300], classes=np.arange(10))
    assert clf.n_iter_ == 3 and clf.score(x_test, y_test) > 0.6
    with pytest.raises(ValueError, match=r"\[42\]"):
        clf.partial_fit(x[:5], np.full(5, 42))


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"hidden_layer_sizes": (10, 0)}, ValueError, "hidden_layer_sizes must hold positive"),
        ({"hidden_layer_sizes": "10"}, TypeError, "hidden_layer_sizes must be a tuple"),
        ({"learning_rates": (0.1,)}, ValueError, "learning_rates needs one rate per weight matrix: 2"),
        ({"learning_rates": (0.1, -1.0)}, ValueError, "learning_rates must be positive"),
        ({"epochs": 0}, ValueError, "epochs must be a positive integer"),
        ({"beta": 0.0}, ValueError, "beta must be nonzero"),
        ({"epsilon": 2.0}, ValueError, "epsilon"),
        ({"solver": "newton"}, ValueError, "solver"),
        ({"scale_inputs": "yes"}, TypeError, "scale_inputs must be True or False"),
        ({"hidden_layer_sizes": (Conv2d(4, 3), 20)}, ValueError, "give input_shape"),
        ({"hidden_layer_sizes": (Conv2d(4, 3), 20), "input_shape": (1, 8, 7)}, ValueError,
         r"input_shape \(1, 8, 7\) holds 56 values; X has 64 features"),
        ({"input_shape": (1, 8)}, ValueError, "input_shape must be three positive integers"),
        ({"init_gains": (1.0,)}, ValueError, "init_gains must have one gain per weight array"),
        ({"algorithm": "chl"}, ValueError, "algorithm must be one of"),
    ],
)
def test_bad_hyperparameters_are_named(digits, params, error, match):
    x, y, _, _ = digits
    with pytest.raises(error, match=match):
        EqPropClassifier(**{**QUICK, **params}).fit(x[:50], y[:50])


def test_one_class_and_feature_mismatch_are_refused(digits):
    x, y, _, _ = digits
    with pytest.raises(ValueError, match="only one class"):
        EqPropClassifier(**QUICK).fit(x[:10], np.zeros(10, dtype=int))
    clf = EqPropClassifier(**QUICK).fit(x, y)
    with pytest.raises(ValueError, match="64 features"):
        clf.predict(x[:, :10])


def test_a_conv_network_on_flattened_images(digits):
    x, y, x_test, y_test = digits
    clf = EqPropClassifier((Conv2d(8, 3, pool="max"),), input_shape=(1, 8, 8), solver="alternating",
                           symmetric=True, beta=0.5, free_steps=10, nudged_steps=4, persistent=False,
                           learning_rates=(0.2, 0.1), init_gains=(1.0, 0.5), epochs=8, threads=1, random_state=0)
    clf.fit(x, y)
    assert clf.network_.layer_shapes == ((8, 3, 3), (10,))
    assert clf.score(x_test, y_test) > 0.9  # 93.5% when written
    again = clone(clf).fit(x, y)  # Conv2d parameters clone and refit identically
    np.testing.assert_array_equal(again.predict(x_test), clf.predict(x_test))
