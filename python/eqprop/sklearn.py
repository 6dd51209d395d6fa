"""A scikit-learn classifier trained by Equilibrium Propagation: :class:`EqPropClassifier`.

It wraps :class:`eqprop.EqPropNetwork` and :class:`eqprop.Trainer` behind the
estimator API, so an EP network drops into a ``Pipeline``, ``GridSearchCV`` or
``cross_val_score``::

    from sklearn.model_selection import cross_val_score
    from eqprop.sklearn import EqPropClassifier

    scores = cross_val_score(EqPropClassifier(hidden_layer_sizes=(100,), epochs=10, threads=1), X, y, cv=5)

It passes ``sklearn.utils.estimator_checks.check_estimator`` (``tests/test_sklearn.py``
runs it through ``parametrize_with_checks``).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from eqprop.layers import Conv2d
from eqprop.network import EqPropNetwork, cache_aligned_copy
from eqprop.trainer import Trainer

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    def _validate_data(estimator, X, y="no_validation", **kwargs):
        return estimator._validate_data(X, y, **kwargs)

__all__ = ["EqPropClassifier"]

#: Rate of the first weight matrix when ``learning_rates`` is None; each deeper
#: matrix gets half the rate of the one before (0.2, 0.1 for one hidden layer:
#: the paper's 1-hidden-layer rates in this library's convention).
DEFAULT_FIRST_RATE = 0.2


class EqPropClassifier(ClassifierMixin, BaseEstimator):
    """A layered Hopfield network trained by Equilibrium Propagation (Scellier & Bengio 2016).

    The network has ``n_features_in_`` inputs, the hidden layers of
    ``hidden_layer_sizes`` and one output unit per class; the target of an
    example is the one-hot code of its class, and the prediction is the class
    of the largest output at the free fixed point (relaxed from zeros).

    Parameters
    ----------
    hidden_layer_sizes : tuple, default (100,)
        The hidden layers, input side first: ints (dense layers) and, with
        ``input_shape``, :class:`eqprop.Conv2d` layers before them.
    input_shape : (int, int, int), optional
        (channels, height, width) of an example, for conv layers: each row of
        ``X`` is an image flattened in C order, and ``n_features_in_`` must be
        C * H * W. Default: flat inputs (dense layers only).
    beta : float, default 1.0
        Nudging strength (nonzero); C = 1/2 ||y - d||^2, as in :class:`eqprop.Trainer`.
    free_steps, nudged_steps : int, default 20 and 4
        Relaxation steps of the free and of the nudged phase.
    epsilon : float, default 0.5
        Euler step size in (0, 1].
    learning_rates : float or tuple of float, optional
        One rate per weight matrix (``len(hidden_layer_sizes) + 1`` of them), or
        one float for all. Default: 0.2 for the first matrix, halved for each
        deeper one.
    batch_size : int, default 20
        Examples per mini-batch (fewer if the training set is smaller).
    epochs : int, default 20
        Epochs of each :meth:`fit`.
    solver : {"euler", "alternating", "fixed-point"}, default "euler"
        Relaxation dynamics (see :meth:`eqprop.EqPropNetwork.relax`).
    symmetric : bool, default False
        Two-sided (+beta/-beta) gradient estimate (Laborieux et al. 2021).
    algorithm : str, optional
        An estimator of the EP family (:mod:`eqprop.algorithms`); replaces
        ``symmetric`` and ``random_sign`` when given.
    random_sign : bool, default True
        Random sign of beta per mini-batch (the paper's regulariser).
    persistent : bool, default True
        Persistent particles during :meth:`fit` (each example's free phase
        starts where its previous one ended).
    eval_steps : int, optional
        Free steps from zeros in :meth:`predict` / :meth:`predict_proba`
        (default: ``free_steps``).
    scale_inputs : bool, default True
        Map each feature linearly onto [0, 1] with the minimum and maximum of
        the training data (kept in ``input_min_`` and ``input_scale_``); values
        outside the training range are clipped. The network clamps its input
        through rho = clip(., 0, 1), so without this (``False``) the data must
        already lie in [0, 1] (as pixels divided by 255 do), or every negative
        value reads as 0. A ``MinMaxScaler`` in a Pipeline does the same job.
    dtype : {"float32", "float64"}, default "float32"
        Floating type of the network, as in :class:`eqprop.EqPropNetwork`
        (``X`` is converted once). :meth:`predict_proba` returns float64 either way.
    precision : {"float32", "bfloat16"}, default "float32"
        The relaxation's matrix products, as in :class:`eqprop.EqPropNetwork`
        (bfloat16 needs dtype float32).
    threads : int, optional
        OpenMP threads of the core; None means all cores. Use ``threads=1``
        inside ``GridSearchCV(n_jobs=...)`` / ``cross_val_score(n_jobs=...)`` so
        that parallel fits do not oversubscribe the cores. Results repeat
        exactly for the same ``random_state`` and thread count.
    init_gains : float or tuple of float, optional
        Multipliers of the Glorot limit of the initial weights, one per weight
        matrix, as in :class:`eqprop.EqPropNetwork` (conv chains relax fast
        with gains below 1 above the first layer).
    cost : {"squared-error", "cross-entropy"}, default "squared-error"
        The cost, as in :class:`eqprop.EqPropNetwork`: the squared error on a
        relaxing output layer, or the cross-entropy of a softmax readout on
        the last hidden layer (needs a hidden layer and an EP algorithm).
    random_state : int, RandomState instance or None, default None
        Seeds the weight initialisation and the trainer's RNG (shuffling, sign
        of beta).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels (any sortable labels: integers, strings, ...).
    n_features_in_ : int
        Number of features seen by :meth:`fit`.
    feature_names_in_ : ndarray of str
        Feature names, when ``X`` had string column names (a DataFrame).
    network_ : eqprop.EqPropNetwork
        The trained network, sizes ``(n_features_in_, *hidden_layer_sizes, n_classes)``.
    trainer_ : eqprop.Trainer
        Its trainer (``trainer_.history`` holds one record per epoch).
    input_min_, input_scale_ : ndarray of shape (n_features_in_,)
        The input scaling ``(X - input_min_) * input_scale_`` (identity when
        ``scale_inputs=False``).
    n_iter_ : int
        Epochs trained so far (``fit`` restarts the count; ``partial_fit`` adds one).

    Notes
    -----
    **Probabilities.** :meth:`predict_proba` returns the output units at the
    free fixed point, each in [0, 1] (the hard sigmoid), divided by their sum;
    a row whose outputs are all 0 gets the uniform distribution. These are
    *normalised outputs*, not calibrated probabilities: training minimises the
    squared error to one-hot targets, not a log-loss. Wrap the estimator in
    ``sklearn.calibration.CalibratedClassifierCV`` when calibrated
    probabilities matter. With ``cost="cross-entropy"`` they are the
    readout's softmax, the model trained on the log-loss. :meth:`predict` is the argmax of the same array.

    **Conv networks.** ``EqPropClassifier((Conv2d(8, 3, pool="max"), 10),
    input_shape=(1, 8, 8), solver="alternating", symmetric=True, beta=0.5)``
    trains a convnet on flattened 8x8 images (``X`` stays 2-D, as every
    scikit-learn estimator expects).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from eqprop.sklearn import EqPropClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = EqPropClassifier(epochs=5, threads=1, random_state=0).fit(X[:1000], y[:1000])
    >>> clf.score(X[1000:], y[1000:]) > 0.85
    True
    """

    def __init__(
        self,
        hidden_layer_sizes: Sequence[object] = (100,),
        *,
        input_shape: Sequence[int] | None = None,
        beta: float = 1.0,
        free_steps: int = 20,
        nudged_steps: int = 4,
        epsilon: float = 0.5,
        learning_rates: float | Sequence[float] | None = None,
        batch_size: int = 20,
        epochs: int = 20,
        solver: str = "euler",
        symmetric: bool = False,
        random_sign: bool = True,
        algorithm: str | None = None,
        persistent: bool = True,
        eval_steps: int | None = None,
        scale_inputs: bool = True,
        dtype: str = "float32",
        precision: str = "float32",
        threads: int | None = None,
        init_gains: float | Sequence[float] | None = None,
        cost: str = "squared-error",
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.cost = cost
        self.hidden_layer_sizes = hidden_layer_sizes
        self.input_shape = input_shape
        self.algorithm = algorithm
        self.init_gains = init_gains
        self.beta = beta
        self.free_steps = free_steps
        self.nudged_steps = nudged_steps
        self.epsilon = epsilon
        self.learning_rates = learning_rates
        self.batch_size = batch_size
        self.epochs = epochs
        self.solver = solver
        self.symmetric = symmetric
        self.random_sign = random_sign
        self.persistent = persistent
        self.eval_steps = eval_steps
        self.scale_inputs = scale_inputs
        self.dtype = dtype
        self.precision = precision
        self.threads = threads
        self.random_state = random_state

    # ------------------------------------------------------------- helpers
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False  # fixed random_state and threads give bitwise the same model
        return tags

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        network = state.get("network_")
        if network is not None:
            # the core updates the parameters in place, so they must be writeable arrays of
            # their own (joblib may load them as read-only memory maps), cache-aligned as made
            network.weights = [cache_aligned_copy(w, w.dtype) for w in network.weights]
            network.biases = [np.array(b, order="C") for b in network.biases]

    def _hidden_sizes(self) -> tuple[object, ...]:
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
            sizes = (sizes,)
        if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence | np.ndarray):
            raise TypeError(f"hidden_layer_sizes must be a tuple of positive integers; got {sizes!r}")
        for n in sizes:
            if isinstance(n, Conv2d):
                if self.input_shape is None:
                    raise ValueError("hidden_layer_sizes holds a Conv2d layer: give input_shape=(C, H, W)")
                continue
            if not (isinstance(n, numbers.Integral) and not isinstance(n, bool) and n > 0):
                raise ValueError(f"hidden_layer_sizes must hold positive integers (or Conv2d layers); "
                                 f"got {tuple(sizes)!r}")
        return tuple(n if isinstance(n, Conv2d) else int(n) for n in sizes)

    def _input_layer(self, n_features: int) -> object:
        """The network's first entry: n_features, or the checked image shape."""
        if self.input_shape is None:
            return n_features
        shape = self.input_shape
        if (isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence | np.ndarray) or len(shape) != 3
                or not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and n > 0 for n in shape)):
            raise ValueError(f"input_shape must be three positive integers (C, H, W); got {shape!r}")
        shape = tuple(int(n) for n in shape)
        if int(np.prod(shape)) != n_features:
            raise ValueError(f"input_shape {shape} holds {int(np.prod(shape))} values; X has {n_features} features")
        return shape

    def _rates(self, n_matrices: int) -> list[float]:
        rates = self.learning_rates
        if rates is None:
            return [DEFAULT_FIRST_RATE * 0.5**k for k in range(n_matrices)]
        if isinstance(rates, numbers.Real) and not isinstance(rates, bool):
            return [float(rates)] * n_matrices
        if isinstance(rates, (str, bytes)) or not isinstance(rates, Sequence | np.ndarray):
            raise TypeError(f"learning_rates must be None, a number or a sequence of numbers; got {rates!r}")
        if len(rates) != n_matrices:
            raise ValueError(
                f"learning_rates needs one rate per weight matrix: {n_matrices} for hidden_layer_sizes "
                f"{self._hidden_sizes()}; got {len(rates)}"
            )
        return list(rates)

    def _seeds(self) -> tuple[int, int]:
        """Seeds of the weights and of the trainer, drawn from ``random_state``."""
        rng = check_random_state(self.random_state)
        return int(rng.randint(2**31 - 1)), int(rng.randint(2**31 - 1))

    def _scaled(self, X: np.ndarray) -> np.ndarray:
        X = (X - self.input_min_) * self.input_scale_
        return np.clip(X, 0.0, 1.0, out=X)

    def _start(self, X: np.ndarray, classes: np.ndarray) -> None:
        """Build a fresh network and trainer for ``classes`` and the scaling of ``X``."""
        if len(classes) < 2:
            raise ValueError(
                f"y holds only one class ({classes[0]!r}); a classifier needs at least two classes"
            )
        if not isinstance(self.scale_inputs, (bool, np.bool_)):
            raise TypeError(f"scale_inputs must be True or False; got {self.scale_inputs!r}")
        hidden = self._hidden_sizes()
        sizes = (self._input_layer(X.shape[1]), *hidden, len(classes))
        if self.scale_inputs:
            self.input_min_ = X.min(axis=0).astype(np.float64)
            span = X.max(axis=0) - self.input_min_
            self.input_scale_ = np.divide(1.0, span, out=np.ones_like(span, dtype=np.float64), where=span > 0)
        else:
            self.input_min_ = np.zeros(X.shape[1])
            self.input_scale_ = np.ones(X.shape[1])
        net_seed, trainer_seed = self._seeds()
        network = EqPropNetwork(list(sizes), dtype=self.dtype, seed=net_seed, init_gains=self.init_gains,
                                cost=self.cost, precision=self.precision, threads=self.threads)
        self.trainer_ = Trainer(
            network, beta=self.beta, free_steps=self.free_steps, nudged_steps=self.nudged_steps,
            epsilon=self.epsilon, learning_rates=self._rates(len(sizes) - 1), batch_size=self.batch_size,
            random_sign=self.random_sign, symmetric=self.symmetric, persistent=self.persistent,
            threads=self.threads, seed=trainer_seed, solver=self.solver, eval_steps=self.eval_steps,
            algorithm=self.algorithm,
        )
        self.network_ = network
        self.classes_ = classes
        self.n_iter_ = 0

    def _encode(self, y: np.ndarray) -> np.ndarray:
        index = np.searchsorted(self.classes_, y)
        index = np.minimum(index, len(self.classes_) - 1)
        unknown = self.classes_[index] != y
        if unknown.any():
            raise ValueError(
                f"y holds labels the classifier was not set up for: {np.unique(y[unknown]).tolist()!r}; "
                f"classes_ is {self.classes_.tolist()!r}"
            )
        return index.astype(np.int64)

    def _check_epochs(self) -> int:
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, numbers.Integral) or self.epochs < 1:
            raise ValueError(f"epochs must be a positive integer; got {self.epochs!r}")
        return int(self.epochs)

    # ----------------------------------------------------------------- API
    def fit(self, X, y) -> EqPropClassifier:
        """Train a fresh network for ``epochs`` epochs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (see ``scale_inputs``).
        y : array-like of shape (n_samples,)
            Class labels; at least two distinct ones.

        Returns
        -------
        self
        """
        X, y = _validate_data(self, X, y, dtype=[np.float64, np.float32], reset=True)
        check_classification_targets(y)
        epochs = self._check_epochs()
        classes = LabelEncoder().fit(y).classes_
        self._start(X, classes)
        self.trainer_.fit(self._scaled(X), self._encode(y), epochs=epochs, progress=False)
        self.n_iter_ = epochs
        return self

    def partial_fit(self, X, y, classes=None) -> EqPropClassifier:
        """One epoch over ``(X, y)``, continuing from the current parameters.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A chunk of training data. The input scaling is fixed by the first
            call's chunk (later values beyond its range are clipped).
        y : array-like of shape (n_samples,)
            Its labels, all in ``classes``.
        classes : array-like of shape (n_classes,), optional
            Every label the data will ever hold; required on the first call
            (as for scikit-learn's other incremental classifiers), ignored after.

        Returns
        -------
        self

        Notes
        -----
        Each call may see different examples, so persistent particles do not
        carry over between calls: every call starts the free phases from zeros.
        """
        first = not hasattr(self, "network_")
        X, y = _validate_data(self, X, y, dtype=[np.float64, np.float32], reset=first)
        check_classification_targets(y)
        if first:
            if classes is None:
                raise ValueError("classes must be given on the first call to partial_fit (every label there will be)")
            self._start(X, np.unique(np.asarray(classes)))
        self.trainer_.reset_particles()
        self.trainer_.fit(self._scaled(X), self._encode(y), epochs=1, progress=False)
        self.n_iter_ += 1
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Normalised outputs at the free fixed point (see Notes in the class documentation).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Non-negative rows summing to 1, columns in the order of ``classes_``.
        """
        check_is_fitted(self, "network_")
        X = _validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        trainer = self.trainer_
        outputs = self.network_.relax(
            self._scaled(X), steps=trainer.eval_steps, epsilon=trainer.epsilon, solver=trainer.solver,
        )[-1].astype(np.float64)
        totals = outputs.sum(axis=1, keepdims=True)
        return np.divide(outputs, totals, out=np.full_like(outputs, 1.0 / outputs.shape[1]), where=totals > 0)

    def predict(self, X) -> np.ndarray:
        """The class of the largest output unit for each row of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        check_is_fitted(self, "network_")
        probabilities = self.predict_proba(X)
        return self.classes_[np.argmax(probabilities, axis=1)]
