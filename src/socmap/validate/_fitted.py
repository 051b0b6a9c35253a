"""Fitted-state checks without importing scikit-learn until one fails.

The AOA and the conformal calibrator ride in every model bundle, so loading a bundle (each
``socmap predict``) must not pay scikit-learn's import (about a second, most of it
``scipy.stats``). The error is still scikit-learn's ``NotFittedError``, which callers and
scikit-learn tools expect.
"""

from __future__ import annotations

from typing import Any

__all__ = ["check_fitted"]


def check_fitted(estimator: Any, attribute: str) -> None:
    """Raise ``sklearn.exceptions.NotFittedError`` when ``estimator`` lacks ``attribute``."""
    if hasattr(estimator, attribute):
        return
    from sklearn.exceptions import NotFittedError

    raise NotFittedError(
        f"This {type(estimator).__name__} instance is not fitted yet. Call 'fit' with "
        "appropriate arguments before using this estimator."
    )
