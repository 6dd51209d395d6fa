"""The EP family: estimators of the same gradient, chosen with one ``algorithm=`` setting.

Every algorithm contrasts the free fixed point s^0 (beta = 0) with a second,
perturbed fixed point and divides by the size of the perturbation, so that the
update theta += lr * estimate descends J = C(s^0):

================  ==========================================================  ==================
algorithm         contrast (divided by the spread)                            spread
================  ==========================================================  ==================
``positive``      dPhi(s^{+beta}) - dPhi(s^0)  (Scellier & Bengio 2016)        beta
``negative``      dPhi(s^{-beta}) - dPhi(s^0)                                  -beta
``random-sign``   ``positive`` or ``negative``, the sign drawn per mini-batch  +-beta
``centered``      dPhi(s^{+beta}) - dPhi(s^{-beta})  (Laborieux et al. 2021)   2 beta
``contrastive``   dPhi(s^{clamp}) - dPhi(s^0), output clamped to d             1
                  (contrastive Hebbian learning, Movellan 1991)
``coupled``       dPhi(s^{clamp}) - dPhi(s^0), output clamped to              eta
                  y^0 + eta (d - y^0)  (coupled learning, Stern et al. 2021)
================  ==========================================================  ==================

The four EP variants estimate dJ/dtheta (Scellier & Bengio 2016's theorem):
``positive`` and ``negative`` carry an O(beta) bias of opposite signs;
``centered`` cancels it (O(beta^2)); ``random-sign`` cancels it on average
(the paper's regulariser). The two clamped algorithms are not estimators of
dJ/dtheta in general: ``coupled`` moves the output by exactly
-eta dC/dy and lets the hidden layers follow, while EP's nudge moves it by the
network's own response to -beta dC/dy; as eta -> 0 the coupled estimate tends
to the response to that prescribed output displacement, which is EP's
direction only when the output's response is isotropic (Scellier et al. 2023
compare them empirically). ``contrastive`` is ``coupled`` at eta = 1, the
classic baseline. The clamped phases hold the output fixed and relax the
hidden layers only.
"""

from __future__ import annotations

from dataclasses import dataclass

ALGORITHMS = ("positive", "negative", "random-sign", "centered", "contrastive", "coupled")


@dataclass(frozen=True)
class Contrast:
    """How the step engine builds the second fixed point of one mini-batch.

    Attributes
    ----------
    mode : {"one-sided", "centered", "clamped"}
        Nudge with ``beta`` (signed), nudge with +beta and -beta, or clamp the
        output to y^0 + coupling (d - y^0).
    beta : float
        The signed nudging strength (one-sided, centered).
    coupling : float
        The clamp's eta (clamped only).
    """

    mode: str
    beta: float = 0.0
    coupling: float = 1.0


def check_algorithm(algorithm: object) -> str:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(map(repr, ALGORITHMS))}; got {algorithm!r}")
    return str(algorithm)


def check_coupling(coupling: object) -> float:
    """The coupled learning's eta, in (0, 1]."""
    import numbers

    if isinstance(coupling, bool) or not isinstance(coupling, numbers.Real):
        raise TypeError(f"coupling must be a real number in (0, 1]; got {coupling!r}")
    if not 0.0 < float(coupling) <= 1.0:
        raise ValueError(f"coupling must be in (0, 1]; got {coupling}")
    return float(coupling)


def legacy_algorithm(symmetric: bool, random_sign: bool) -> str:
    """The algorithm the older ``symmetric`` / ``random_sign`` switches describe."""
    if symmetric:
        return "centered"
    return "random-sign" if random_sign else "positive"


def uses_beta(algorithm: str) -> bool:
    """Whether the algorithm nudges (and so divides by beta)."""
    return algorithm in ("positive", "negative", "random-sign", "centered")


def needs_negative_beta(algorithm: str) -> bool:
    """Whether the algorithm relaxes with -|beta| (which the alternating solver bounds)."""
    return algorithm in ("negative", "random-sign", "centered")


def contrast(algorithm: str, beta: float, coupling: float, negative: bool = False) -> Contrast:
    """The contrast of one mini-batch; ``negative`` is the drawn sign of ``random-sign``."""
    if algorithm == "positive":
        return Contrast("one-sided", abs(beta))
    if algorithm == "negative":
        return Contrast("one-sided", -abs(beta))
    if algorithm == "random-sign":
        return Contrast("one-sided", -abs(beta) if negative else abs(beta))
    if algorithm == "centered":
        return Contrast("centered", abs(beta))
    if algorithm == "contrastive":
        return Contrast("clamped", coupling=1.0)
    return Contrast("clamped", coupling=coupling)
