"""rPPG estimators: classical methods and deep models behind one registry.

Importing this package registers every built-in estimator.
"""

from rppgedit.estimators import classical as _classical  # noqa: F401  (registers)
from rppgedit.estimators import deep as _deep  # noqa: F401  (registers)
from rppgedit.estimators.registry import Estimator, get, names, register
from rppgedit.estimators.roi import spatial_mean

__all__ = ["Estimator", "get", "names", "register", "spatial_mean"]
