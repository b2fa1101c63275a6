"""``sklml``: from a table of annotated texts to a report, without writing code.

Subcommands::

    sklml evaluate DATA --format FORMAT [--strategies first,max,...] [--out DIR]
    sklml analyze  DATA --format FORMAT [--out DIR]
    sklml predict  (--model-dir DIR | --estimator FILE) --input CSV [--output CSV] [--store DIR]
    sklml score    (--model-dir DIR | --estimator FILE) --input FILE --output DIR [--runner ray]
    sklml cache    {info,clear} --cache-dir DIR

Bad input (missing file, wrong format, unknown label, empty data) prints one
line, ``sklml: error: ...``, and exits with status 2.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ._aggregation import AGGREGATIONS
from ._jsontext import json_text
from .exceptions import CacheWarning, SklearnLLMError, UntrustedFileError

FORMATS = ("annotations", "counts", "lewidi", "lewidi2025", "goemotions", "xed", "csv")
#: the aggregations, from the one table in ._aggregation
STRATEGIES = AGGREGATIONS


class UsageError(Exception):
    """A problem with the command line or the input data: one line, exit status 2."""


# ----------------------------------------------------------------- data
def _labels_arg(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def guess_format(path: Path) -> str | None:
    """The ``--format`` a data file looks like, from its first bytes (None: no guess)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096).decode("utf-8", errors="replace")
    except OSError:
        return None
    if head.lstrip().startswith(("{", "[")):
        return "lewidi2025" if '"soft_label"' in head and '"split"' in head else "lewidi"
    lines = [line for line in head.splitlines() if line.strip()]
    if not lines:
        return None
    delimiter = "\t" if lines[0].count("\t") > lines[0].count(",") else ","
    header = [c.strip().lower() for c in next(csv.reader([lines[0]], delimiter=delimiter))]
    if not any("text" in c for c in header):
        return "goemotions" if delimiter == "\t" and len(header) == 3 else None
    if any(c in ("annotator", "annotator_id", "worker", "rater") for c in header):
        return "annotations"
    values = [cell for line in lines[1:6]
              for cell in next(csv.reader([line], delimiter=delimiter))[1:]]
    numbers = []
    for cell in values:
        try:
            numbers.append(float(cell))
        except ValueError:
            continue
    if numbers and all(n == int(n) for n in numbers) and max(numbers) > 1:
        return "counts"
    if numbers and all(0 <= n <= 1 for n in numbers):
        return "csv"
    return None


def _id_column(path: Path, args) -> str | None:
    """``--id-column`` when the table has it (else the loaders number the rows by line)."""
    from .datasets._base import read_header

    return args.id_column if args.id_column in read_header(path, args.delimiter,
                                                              args.encoding) else None


def _load_file(path: Path, args):
    from . import datasets as ds

    labels = _labels_arg(args.labels)
    if args.format == "annotations":
        # every label of the file; --labels then chooses among them (select_labels names a
        # label the file does not have, where the loader would name a row's label instead)
        return ds.load_annotations(path, text_column=args.text_column, item_column=args.id_column,
                                   separator=args.separator,
                                   delimiter=args.delimiter, encoding=args.encoding,
                                   annotator_columns=args.annotator_columns,
                                   annotator_column=args.annotator_column or None,
                                   repeats=args.repeats)
    if args.format == "counts":
        if not labels:
            raise UsageError("--format counts needs --labels (the count columns).")
        n = args.n_annotators
        return ds.load_counts(path, label_columns={label: label for label in labels},
                              text_column=args.text_column, id_column=_id_column(path, args),
                              n_annotators=int(n) if n and n.isdigit() else n,
                              none_columns=_labels_arg(args.none_columns) or (),
                              keep_total=args.keep_total, delimiter=args.delimiter,
                              encoding=args.encoding)
    if args.format == "lewidi2025":
        return ds.load_lewidi2025(path)
    if args.format == "lewidi":
        streams = {"hateful": None, "aggressive": "aggressive language detection",
                   "offensive": "offensive language detection"} if not labels else {
            label.split("=", 1)[0]: (label.split("=", 1)[1] if "=" in label else None)
            for label in labels}
        return ds.load_lewidi(path, label_streams=streams, text_field=args.text_field)
    if args.format == "goemotions":
        return ds.load_goemotions(path.stem, data_home=path.parent.parent, pooled=not args.all_labels)
    if args.format == "xed":
        return ds.load_xed(data_home=path.parent.parent)
    return ds.load_proportions(path, text_column=args.text_column, label_columns=labels,
                               id_column=_id_column(path, args), delimiter=args.delimiter,
                               encoding=args.encoding)


def _load_checked(path: Path, args):
    """:func:`_load_file`, with a hint when the file looks like another ``--format``."""
    try:
        return _load_file(path, args)
    except (UsageError, SklearnLLMError, ValueError, KeyError) as exc:
        guess = guess_format(path)
        message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        if guess is not None and guess != args.format:
            raise UsageError(f"{message.rstrip('.')}. The file looks like --format {guess} "
                             f"(given: --format {args.format}).") from None
        raise


#: the file names a split folder's files may have, per --format (None: any)
_SPLIT_SUFFIXES = {"lewidi": (".json",), "lewidi2025": (".json",), "goemotions": (".tsv",),
                   "annotations": (".csv", ".tsv", ".tab", ".txt"),
                   "counts": (".csv", ".tsv", ".tab", ".txt"),
                   "csv": (".csv", ".tsv", ".tab", ".txt")}


def _split_files(folder: Path, fmt: str) -> tuple[Path, Path]:
    """The one *train* and one *test* file of ``folder`` that ``--format`` reads.

    None found, or several, is an error listing what the folder holds: picking
    one of several silently would evaluate on a file the user did not mean.
    """
    suffixes = _SPLIT_SUFFIXES.get(fmt)
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                   and (suffixes is None or p.suffix.lower() in suffixes))
    found = {part: [p for p in files if part in p.stem.lower()] for part in ("train", "test")}
    for part, paths in found.items():
        if len(paths) > 1:
            raise UsageError(
                f"{folder}: several *{part}* files for --format {fmt}: "
                f"{', '.join(p.name for p in paths)}; name the two files with --train FILE "
                "--test FILE.")
    if not found["train"] or not found["test"]:
        missing = " and ".join(part for part, paths in found.items() if not paths)
        held = ", ".join(p.name for p in files) or "no such files"
        raise UsageError(
            f"{folder}: no *{missing}* file for --format {fmt} (it holds {held}); name the "
            "files with --train FILE --test FILE, or give one file to split with --test-size.")
    return found["train"][0], found["test"][0]


def _rename_arg(value: str | None) -> dict[str, str]:
    """``old=new,old2=new2`` as a mapping (an entry without ``=`` is an error)."""
    mapping = {}
    for entry in _labels_arg(value) or []:
        old, sep, new = entry.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise UsageError(f"--label-rename {value}: each entry is old=new; got {entry!r}.")
        mapping[old.strip()] = new.strip()
    return mapping


def _shape_labels(train, test, args, train_name: str, test_name: str):
    """--labels (a subset, for annotations), test aligned to train's labels, --label-rename."""
    from .datasets import rename_labels, select_labels

    wanted = _labels_arg(args.labels) if args.format == "annotations" else None
    if wanted:
        try:
            train = select_labels(train, wanted, source=train_name)
        except ValueError as exc:
            raise UsageError(f"--labels: {exc}") from None
    names = list(train.label_names)
    if list(test.label_names) != names:
        extra = [n for n in test.label_names if n not in names]
        if extra and not wanted:
            raise UsageError(f"{test_name} has label(s) {extra} that {train_name} does not have; "
                             "choose the labels to evaluate with --labels.")
        # labels read from rows: one that no test annotator chose is a column of zeros
        test = select_labels(test, names, fill_missing=args.format == "annotations",
                             source=test_name)
    mapping = _rename_arg(getattr(args, "label_rename", None))
    if mapping:
        try:
            train = rename_labels(train, mapping, source=train_name)
        except ValueError as exc:
            raise UsageError(f"--label-rename: {exc}") from None
        test = rename_labels(test, mapping, source=test_name)
    return train, test


def _data_files(args) -> tuple[Path | None, Path | None, Path | None]:
    """(DATA, train file, test file) from the command line, checked for existence."""
    if args.format is None:
        raise UsageError(f"--format is required; choose from {', '.join(FORMATS)}.")
    given = [args.data is not None, args.train is not None or args.test is not None]
    if all(given):
        raise UsageError("give DATA or --train FILE --test FILE, not both.")
    if not any(given):
        raise UsageError("give DATA (a file or a split folder) or --train FILE --test FILE.")
    if args.data is None and (args.train is None or args.test is None):
        raise UsageError(f"--{'test' if args.test is None else 'train'} FILE is missing: "
                         "--train and --test go together.")
    paths = [Path(p) if p is not None else None for p in (args.data, args.train, args.test)]
    for path in paths:
        if path is not None and not path.exists():
            raise UsageError(f"{path}: no such file or directory.")
    for flag, path in (("--train", paths[1]), ("--test", paths[2])):
        if path is not None and path.is_dir():
            raise UsageError(f"{flag} {path}: is a folder; give a file.")
    return paths[0], paths[1], paths[2]


def load_data(args):
    """(train, test) Bunches from DATA (one file, split with --test-size, or a split folder)
    or from --train FILE --test FILE."""
    from .datasets import subset, train_test_split_bunch

    path, train_file, test_file = _data_files(args)
    if path is not None and args.format == "xed" and path.is_dir():
        path = path / "en-annotated.tsv"
    if path is not None and path.is_dir():
        train_file, test_file = _split_files(path, args.format)
    if train_file is not None:
        train, test = _load_checked(train_file, args), _load_checked(test_file, args)
        train, test = _shape_labels(train, test, args, train_file.name, test_file.name)
    else:
        data = _load_checked(path, args)
        data, _ = _shape_labels(data, data, args, path.name, path.name)
        if len(data.data) < 2:
            raise UsageError(f"{path}: needs at least 2 texts, found {len(data.data)}.")
        train, test = train_test_split_bunch(data, test_size=args.test_size, random_state=args.seed)
    where = path or train_file.parent
    for name, part in (("train", train), ("test", test)):
        if len(part.data) == 0:
            raise UsageError(f"{where}: the {name} part is empty.")
    rng = np.random.default_rng(args.seed)
    if args.max_train and len(train.data) > args.max_train:
        train = subset(train, np.sort(rng.choice(len(train.data), args.max_train, replace=False)))
    if args.max_test and len(test.data) > args.max_test:
        test = subset(test, np.sort(rng.choice(len(test.data), args.max_test, replace=False)))
    return train, test


# ------------------------------------------------------------- repeatable runs
#: options that do not shape a run's numbers: where it writes, what it shows, where records go
_NOT_RECORDED = {"command", "func", "parser_", "from_file", "out", "quiet", "cache_dir"}
_PATH_OPTIONS = ("data", "train", "test")


def run_options(args) -> dict:
    """The options that shaped this run, as ``--from`` reads them back (paths made absolute)."""
    options = {k: v for k, v in vars(args).items() if k not in _NOT_RECORDED}
    for key in _PATH_OPTIONS:
        if options.get(key) is not None:
            options[key] = str(Path(options[key]).resolve())
    return options


def recorded_options(path: str, parser: argparse.ArgumentParser) -> dict:
    """The options recorded in a ``results.json`` / ``steps.json``, checked against ``parser``."""
    from . import __version__

    try:
        found = json.loads(Path(path).read_text(encoding="utf-8"))
    except RecursionError:
        raise UsageError(f"--from {path}: nested too deeply to be a results file.") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"--from {path}: cannot read it as JSON ({exc}).") from None
    options = found.get("options") if isinstance(found, dict) else None
    if not isinstance(options, dict):
        raise UsageError(f"--from {path}: no recorded options (it was not written by `sklml "
                         "evaluate` or `sklml analyze`, or by a version before they were recorded).")
    known = {action.dest for action in parser._actions} - _NOT_RECORDED
    unknown = sorted(set(options) - known)
    if unknown:
        raise UsageError(f"--from {path}: options {unknown} are not options of `{parser.prog}`.")
    recorded = (found.get("versions") or {}).get("sklearn_llm_multilabel")
    if recorded and recorded != __version__:
        print(f"sklml: note: {path} was written by version {recorded}; this is {__version__}.",
              file=sys.stderr)
    return options


def command_line(parser: argparse.ArgumentParser, options: dict) -> str:
    """The command line that repeats a run: ``options`` that differ from the defaults.

    The defaults are a fresh parser's: after ``--from`` the running parser's defaults are
    the recorded options.
    """
    import shlex

    name = parser.prog.split()[-1]
    fresh = next(a for a in build_parser()._actions
                 if isinstance(a, argparse._SubParsersAction)).choices[name]
    words = [*fresh.prog.split()]
    for action in fresh._actions:
        if action.dest not in options or action.dest in _NOT_RECORDED:
            continue
        value = options[action.dest]
        if isinstance(action, argparse._StoreConstAction):  # flags (store_true included)
            if value == action.const and value != fresh.get_default(action.dest):
                words.append(action.option_strings[0])
            continue
        if value == fresh.get_default(action.dest) or value is None:
            continue
        if action.dest == "delimiter" and value == "\t":
            value = "tab"
        if not action.option_strings:
            words.append(str(value))
        else:
            words += [action.option_strings[-1], str(value)]
    return shlex.join(words)


# ------------------------------------------------------------- commands
def _classifier(args, train):
    from . import LLMMultiLabelClassifier

    return LLMMultiLabelClassifier(model=args.model, labels=list(train.label_names),
                                   n_shots=args.n_shots, cache_dir=args.cache_dir,
                                   random_state=args.seed, show_progress=not args.quiet,
                                   include_empty_demos=args.include_empty_demos,
                                   demo_selection=args.demo_selection, n_prompts=args.n_prompts)


def _save_figure(fig, path: Path) -> None:
    fig.savefig(path)
    print(f"wrote {path}")


def _check_out_folder(flag: str, value) -> None:
    """A folder the command will write: refused at once (exit 2), before any work, when it is
    a file or cannot be created or written."""
    if value is None:
        return
    folder = Path(value)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{flag} {value}: is a file; give a folder (it is created when missing).")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UsageError(f"{flag} {value}: cannot be written ({exc.strerror or exc}); give a "
                         "writable folder.") from None


def _save_report(write, out: Path) -> int:
    """``write(folder)``, the results of a finished run; when ``out`` fails (a full or
    read-only disk), the results go to a new temporary folder, and the error says where."""
    try:
        written = write(out)
    except OSError as exc:
        fallback = Path(tempfile.mkdtemp(prefix="sklml-results-"))
        written = write(fallback)
        print(f"sklml: error: {out} could not be written ({exc.strerror or exc}); the results "
              f"were saved to {fallback} instead", file=sys.stderr)
        return 1
    print("\nwrote " + ", ".join(str(p) for p in written))
    return 0


def _check_out_file(flag: str, value) -> None:
    """A file the command will write: refused at once when it is a folder or its folder is missing."""
    if value is None:
        return
    path = Path(value)
    if path.is_dir():
        raise UsageError(f"{flag} {value}: is a folder; give a file name.")
    if not path.parent.is_dir():
        raise UsageError(f"{flag} {value}: the folder {path.parent} does not exist.")


def _check_sizes(args) -> None:
    if getattr(args, "n_prompts", 1) < 1:
        raise UsageError(f"--n-prompts must be at least 1; got {args.n_prompts}.")
    from .metrics._bootstrap import check_n_bootstrap

    try:
        check_n_bootstrap(getattr(args, "n_bootstrap", 0))
    except ValueError as exc:
        raise UsageError(f"--{exc}".replace("n_bootstrap", "n-bootstrap", 1)) from None
    for flag in ("max_train", "max_test"):
        value = getattr(args, flag, None)
        if value is not None and value < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be a positive number of texts; "
                             f"got {value}.")


def cmd_evaluate(args) -> int:
    from .report import evaluate_strategies

    strategies = _labels_arg(args.strategies) or []
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown or not strategies:
        raise UsageError(f"--strategies: unknown {', '.join(unknown) or '(none given)'}; "
                         f"choose from {', '.join(STRATEGIES)}.")
    _check_out_folder("--out", args.out)
    _check_sizes(args)
    train, test = load_data(args)
    report = evaluate_strategies(
        train, test, strategies=strategies, model=args.model, n_shots=args.n_shots,
        include_empty_demos=args.include_empty_demos,
        demo_selection=args.demo_selection, n_prompts=args.n_prompts,
        cache_dir=args.cache_dir, random_state=args.seed, calibrate=args.calibrate,
        saved_aggregation=args.strategy, show_progress=not args.quiet,
        settings=_recorded_settings(args), n_bootstrap=args.n_bootstrap)
    print(f"\n{len(train.data)} training and {len(test.data)} test texts, labels: "
          f"{', '.join(train.label_names)}\n")
    print(report.to_markdown())
    _print_generation_notes(report.settings)
    print(f"\nThe saved estimator predicts with aggregation={args.strategy!r} "
          "(sklml predict --strategy to change it).")
    title = f"{_data_name(args)}, {args.model}, {len(test.data)} test texts"
    return _save_report(lambda folder: report.save(folder, title=title), Path(args.out))


def _data_name(args) -> str:
    return Path(args.data).name if args.data else f"{Path(args.train).name} / {Path(args.test).name}"


def _recorded_settings(args) -> dict:
    """What results.json / steps.json say about the run: the data, the options that shaped it
    (``--from`` reads them back) and the command line that repeats it."""
    options = run_options(args)
    return {"data": options.get("data"), "train_file": options.get("train"),
            "test_file": options.get("test"), "format": args.format, "options": options,
            "command": command_line(args.parser_, options)}


def _print_generation_notes(found: dict) -> None:
    """One line each: labels outside the label set, a label list written for most texts."""
    from ._diagnostics import unknown_label_message

    message = unknown_label_message(found["unknown_labels"]) if found.get("unknown_labels") else None
    if message:
        print(f"\nNote: on the test texts {message}")
    dominant = found.get("dominant_generation")
    if dominant:
        print(f"\nNote: {dominant['count']} of {dominant['n_texts']} test generations "
              f"({100 * dominant['share']:.0f}%) are the same label list "
              f"({dominant['generation']!r}); the model may copy a demonstration.")


def cmd_analyze(args) -> int:
    from ._diagnostics import dominant_generation, unknown_label_summary
    from .analysis import summarize_steps, summary_markdown
    from .plotting import plot_first_step_vs_output, plot_label_alignment, plot_step_statistics

    _check_out_folder("--out", args.out)
    _check_sizes(args)
    train, test = load_data(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from .report import annotator_fit_params

    clf = _classifier(args, train).fit(train.data, train.target,
                                       **annotator_fit_params(train, args.demo_selection))
    traces = clf.predict_steps(test.data)
    names = [*clf.label_names_, clf.none_label]
    summary = summarize_steps(traces, names)
    summary["unknown_labels"] = unknown_label_summary([t["unknown_labels"] for t in traces])
    summary["dominant_generation"] = dominant_generation(
        list(test.data), [t["generated_text"] for t in traces])
    if any("prompt_probabilities" in t for t in traces):
        spread = np.stack([t["prompt_probabilities"] for t in traces]).std(axis=1)
        summary["demonstration_sensitivity"] = {
            "n_prompts": int(traces[0]["prompt_probabilities"].shape[0]),
            "mean_spread_per_label": dict(zip(clf.label_names_, spread.mean(axis=0).round(4)
                                              .tolist()))}
    summary.update(_recorded_settings(args))
    (out / "steps.json").write_text(json_text(summary))
    markdown = summary_markdown(summary)
    (out / "steps.md").write_text(markdown)
    print(markdown)
    _print_generation_notes(summary)
    print(f"wrote {out / 'steps.json'}, {out / 'steps.md'}")
    _save_figure(plot_step_statistics(traces, names), out / "step_statistics.png")
    _save_figure(plot_first_step_vs_output(traces, names), out / "first_step_vs_output.png")
    if any("prompt_probabilities" in t for t in traces):  # --n-prompts > 1
        from .plotting import plot_demonstration_sensitivity

        _save_figure(plot_demonstration_sensitivity(traces, list(clf.label_names_)),
                     out / "demonstration_sensitivity.png")
    first = clf.set_params(aggregation="first").predict_proba(test.data)  # from the cache
    best = clf.set_params(aggregation="max").predict_proba(test.data)
    _save_figure(plot_label_alignment(test.target, first, best, list(clf.label_names_),
                                      title=f"{_data_name(args)}, {args.model}"),
                 out / "label_alignment.png")
    return 0


def _estimator_file(args) -> Path:
    """The estimator file ``--estimator`` or ``--model-dir`` names (checked to exist)."""
    from .persistence import ESTIMATOR_FILE

    trust = getattr(args, "trust_pickle", False)
    if args.estimator:
        path = Path(args.estimator)
    else:
        path = Path(args.model_dir) / ESTIMATOR_FILE
        legacy = Path(args.model_dir) / "estimator.joblib"
        if not path.is_file() and legacy.is_file():
            if not trust:
                raise UsageError(
                    f"{legacy}: a joblib file runs any code it holds when loaded; run `sklml "
                    "evaluate` again (it writes estimator.skops) or pass --trust-pickle if you "
                    "wrote this folder yourself.")
            path = legacy
    if not path.is_file():
        raise UsageError(f"{path}: no such file (write one with `sklml evaluate --out DIR`).")
    return path


def _load_estimator(args):
    from .persistence import load_estimator

    path, trust = _estimator_file(args), getattr(args, "trust_pickle", False)
    try:
        clf = load_estimator(path, trust_pickle=trust,
                             trust_remote_code=getattr(args, "trust_remote_code", False))
    except UntrustedFileError as exc:
        raise UsageError(str(exc).replace("trust_pickle=True (sklml predict --trust-pickle)",
                                          "--trust-pickle").replace(
            "trust_remote_code=True to load_estimator (sklml --trust-remote-code)",
            "--trust-remote-code")) from None
    if not hasattr(clf, "predict_proba") or not hasattr(clf, "label_names_"):
        raise UsageError(f"{path}: not a fitted LLMMultiLabelClassifier.")
    if getattr(args, "store", None):
        if not Path(args.store).is_dir():
            raise UsageError(f"{args.store}: no such folder (write one with `sklml score`).")
        clf.set_params(cache_dir=args.store)
    return clf


def cmd_predict(args) -> int:
    from ._plan import stored_predictor

    _check_out_file("--output", args.output)
    path = _estimator_file(args)
    source = Path(args.input)
    if not source.is_file():
        raise UsageError(f"{source}: no such file.")
    texts = _input_texts(source, args)
    if not texts:
        raise UsageError(f"{source}: no texts.")
    if args.store and not Path(args.store).is_dir():
        raise UsageError(f"{args.store}: no such folder (write one with `sklml score`).")
    # every record stored: the estimator's plan answers without skops, torch or the model
    clf = stored_predictor(path, texts, cache_dir=args.store, aggregation=args.strategy)
    if clf is None:
        clf = _load_estimator(args)
    if args.strategy:
        clf.set_params(aggregation=args.strategy)
    aggregation = clf.aggregation if isinstance(clf.aggregation, str) else "custom"
    if args.store:
        _check_store_matches(clf, texts, Path(args.store))
    output = Path(args.output) if args.output else None
    # written under a temporary name and renamed into place: a failed write never leaves a
    # half-written file where the user asked for the predictions; opened before the scoring,
    # so that a folder that cannot be written costs no work
    partial = output.with_name(f".{output.name}.partial") if output else None
    try:
        target = open(partial, "w", newline="", encoding="utf-8") if output else sys.stdout
    except OSError as exc:
        raise UsageError(f"--output {output}: cannot be written ({exc.strerror or exc}).") \
            from None
    try:
        proba = clf.predict_proba(texts)
        predicted = clf.predict(texts)
    except BaseException:
        if output:
            target.close()
            partial.unlink(missing_ok=True)
        raise
    rows = _prediction_rows(texts, proba, predicted, list(clf.label_names_), aggregation)
    if not output:
        csv.writer(sys.stdout).writerows(rows)
        return 0
    try:
        with target:
            csv.writer(target).writerows(rows)
        os.replace(partial, output)
    except OSError as exc:  # a full disk after the scoring: keep the predictions elsewhere
        partial.unlink(missing_ok=True)
        fd, fallback = tempfile.mkstemp(prefix="sklml-predictions-", suffix=".csv")
        try:
            with open(fd, "w", newline="", encoding="utf-8") as fh:
                csv.writer(fh).writerows(rows)
        except BaseException:
            os.unlink(fallback)
            raise
        print(f"sklml: error: {output} could not be written ({exc.strerror or exc}); the "
              f"predictions were saved to {fallback} instead", file=sys.stderr)
        return 1
    print(f"wrote {args.output} ({len(texts)} texts, aggregation={aggregation!r})")
    return 0


def _prediction_rows(texts, proba, predicted, names: list[str], aggregation: str) -> list[list]:
    """The rows of ``sklml predict``'s CSV, its header first."""
    rows = [["text", *(f"p_{n}" for n in names), "predicted_labels", "aggregation"]]
    for text, p, y in zip(texts, proba, predicted):
        labels = ",".join(n for n, flag in zip(names, y) if flag)
        rows.append([text, *(f"{v:.6f}" for v in p), labels, aggregation])
    return rows


def _check_store_matches(clf, texts: list[str], store: Path) -> None:
    """Say so when ``--store`` holds records but none of these texts' (other keys)."""
    from ._aggregation import BREAKDOWN_AGGREGATIONS
    from .scoring import open_store, record_keys

    kind = clf.aggregation if clf.aggregation in BREAKDOWN_AGGREGATIONS else "steps"
    cache = open_store(store)
    recipe = clf._recipe(kind)  # keys without the model when the fitted recipe holds
    found = recipe.keys(clf.prepare_texts(texts)) if recipe is not None else None
    keys = sorted(set(found if found is not None else record_keys(clf, texts, kind=kind)))
    if cache.contains(keys).any():
        return
    held = len(cache.info().entries)
    if held:
        warnings.warn(
            f"none of the {len(keys)} texts' records are in {store}, although it holds {held} "
            "records under other keys: they were written by an estimator with another prompt "
            "fingerprint (other demonstrations, model, tokenizer, prompt or decoding settings), "
            "so every text is scored now. Predict with the estimator that filled the store.",
            CacheWarning, stacklevel=2)


def _input_texts(source: Path, args) -> list[str]:
    """The texts of ``--input`` as the file spells them (skipped invalid ones are counted)."""
    from ._textfile import read_texts

    texts, skipped = read_texts(source, args.text_column, skip_invalid=args.skip_invalid_texts)
    if skipped:
        print(f"sklml: skipped {skipped} row(s) of {source} with a missing or empty text "
              "(--skip-invalid-texts)", file=sys.stderr)
    return texts


def _check_pyarrow(source: Path, output: Path) -> None:
    """sklml score needs pyarrow for a Parquet input or a sharded store: one line if missing."""
    import importlib.util

    from ._textfile import PYARROW_EXTRA
    from .store._files import MARKER

    one_file_cache = (output / MARKER).is_file()
    if importlib.util.find_spec("pyarrow") is None and (
            source.suffix.lower() == ".parquet" or not one_file_cache):
        what = "a .parquet input" if source.suffix.lower() == ".parquet" else \
            "the sharded store it writes"
        raise UsageError(f"sklml score: {what} needs pyarrow, which is not installed; "
                         f"{PYARROW_EXTRA}")


def cmd_score(args) -> int:
    from .scoring import KINDS

    _check_out_folder("--output", args.output)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise UsageError(f"--kinds: unknown {', '.join(unknown) or '(none given)'}; choose from "
                         f"{', '.join(KINDS)}.")
    for flag, value, least in (("--workers", args.workers, 1), ("--batch-size", args.batch_size, 1),
                               ("--gpus-per-worker", args.gpus_per_worker, 0)):
        if value is not None and value < least:
            raise UsageError(f"{flag} must be at least {least}; got {value}.")
    source = Path(args.input)
    if not source.is_file():
        raise UsageError(f"{source}: no such file.")
    _check_pyarrow(source, Path(args.output))
    clf = _load_estimator(args)
    if args.runner == "ray":
        import ray

        from .distributed import score_dataset

        ray.init(address=args.ray_address, include_dashboard=False)
        summary = score_dataset(clf, source, output=args.output, num_workers=args.workers,
                                num_gpus_per_worker=args.gpus_per_worker,
                                batch_size=args.batch_size, resume=args.resume,
                                hidden_states=args.hidden_states, kinds=kinds,
                                text_column=args.text_column, show_progress=not args.quiet,
                                skip_invalid_texts=args.skip_invalid_texts)
        print(f"{args.output}: {summary.n_scored} texts scored, {summary.n_skipped} already "
              f"there, of {summary.n_unique} distinct texts ({summary.seconds:.0f} s)")
        return 0
    from .scoring import open_store, score_texts

    texts = _input_texts(source, args)
    # a new folder becomes a sharded store; an existing store or step cache is used as it is
    store = open_store(args.output, hidden_dtype="float32" if args.hidden_states else "float16")
    for kind in kinds:
        score_texts(clf, texts, store=store, kind=kind, show_progress=not args.quiet)
    print(f"{args.output}: records of {len(set(texts))} distinct texts ({', '.join(kinds)})")
    return 0


def cmd_cache(args) -> int:
    from .store._files import StepCache

    if args.action == "prune":
        import shutil

        from .backends._convert import cache_contents, folder_bytes, orphaned_temporaries, stale_conversions

        converted, models, _ = cache_contents()
        stale, orphans = stale_conversions(models), orphaned_temporaries(converted)
        size = folder_bytes(stale + orphans)
        for folder in stale + orphans:
            shutil.rmtree(folder)
        print(f"{converted}: removed {len(stale)} stale converted GGUF model(s) and "
              f"{len(orphans)} unfinished conversion(s), {size / 2**20:.1f} MiB; kept "
              f"{len(models) - len(stale)}")
        return 0
    root = Path(args.cache_dir)
    cache = StepCache(root, create=False)  # refuses a folder that is not a step cache
    if args.action == "info":
        contents = cache.info()
        other = ("unreadable shards or other files (not the store's)"
                 if cache.sharded is not None else "other files (not the cache's)")
        print(f"{root}: {len(contents.entries)} cached texts, "
              f"{contents.entry_bytes / 2**20:.1f} MiB; {len(contents.orphans)} orphaned "
              f"temporary files; {len(contents.foreign)} {other}")
        from .backends._convert import cache_contents, folder_bytes, orphaned_temporaries, stale_conversions

        converted, models, size = cache_contents()
        stale, unfinished = stale_conversions(models), orphaned_temporaries(converted)
        print(f"{converted}: {len(models)} converted GGUF model(s), {size / 2**20:.1f} MiB "
              "(SKLML_MODEL_CACHE; delete the folder to convert again); "
              f"{len(stale)} stale ({folder_bytes(stale) / 2**20:.1f} MiB: another version's, or "
              "of a GGUF file that changed or is gone); "
              f"{len(unfinished)} unfinished ({folder_bytes(unfinished) / 2**20:.1f} MiB: a "
              "conversion killed mid-write); 'sklml cache prune' removes stale and unfinished "
              "ones")
    else:
        entries, orphans = cache.clear()
        print(f"{root}: removed {entries} cached texts and {orphans} orphaned temporary files")
    return 0


# --------------------------------------------------------------- parser
def default_cache_dir() -> str:
    """The CLI's step cache: ``$SKLML_CACHE_DIR``, else ``$XDG_CACHE_HOME/sklearn_llm_multilabel``
    (``~/.cache/sklearn_llm_multilabel`` when unset)."""
    if os.environ.get("SKLML_CACHE_DIR"):
        return os.environ["SKLML_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "sklearn_llm_multilabel")


def _delimiter(value: str) -> str:
    """``tab`` or a literal backslash-t mean a tab (hard to type in a shell)."""
    return {"\\t": "\t", "tab": "\t"}.get(value, value)


def _data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", nargs="?", help="a data file (split with --test-size), or a folder "
                                           "holding one *train* and one *test* file")
    data = p.add_argument_group("dataset")
    data.add_argument("--train", help="the training file (with --test; instead of DATA)")
    data.add_argument("--test", help="the test file (with --train; instead of DATA)")
    data.add_argument("--format", choices=FORMATS,
                      help="layout of DATA: one row per annotator (annotations), one count "
                           "column per label (counts), Le-Wi-Di JSON (lewidi; the 2025 edition's, "
                           "VariErrNLI or MP: lewidi2025), the GoEmotions, "
                           "XED files, or a text column and one proportion column per label "
                           "(csv); required unless --from gives it")
    data.add_argument("--labels", help="comma-separated label names: the labels to evaluate, in "
                                       "this order (annotations; default: every label), the "
                                       "columns (counts/csv), or name=stream (lewidi)")
    data.add_argument("--label-rename", help="comma-separated old=new: rename labels after "
                                             "loading (e.g. labels that share a first token)")
    data.add_argument("--text-column", default="text", help="column holding the texts")
    data.add_argument("--id-column", default="id",
                      help="column identifying items, when the table has it (else items are "
                           "numbered by line); written as the id of test_predictions.csv")
    data.add_argument("--n-annotators", help="counts: a number or the column holding it")
    data.add_argument("--none-columns", help="counts: comma-separated columns counting 'no label'")
    data.add_argument("--keep-total", type=int,
                      help="counts: keep rows whose counts sum to this (then the annotator count)")
    data.add_argument("--delimiter", type=_delimiter,
                      help="field separator of annotations/counts/csv files (default: from the "
                           "file name; 'tab' for tabs)")
    data.add_argument("--separator", default=",",
                      help="annotations: separator of the labels in one cell")
    data.add_argument("--annotator-columns",
                      help="annotations: a wide table's annotator columns, as a regular "
                           "expression with a named group 'annotator' (and 'label' for 0/1 "
                           "columns), e.g. '(?P<annotator>A\\d+)_(?P<label>\\w+)'")
    data.add_argument("--annotator-column", default="annotator",
                      help="annotations, long tables: the column naming each row's annotator "
                           "(an annotator labelling an item twice is an error); '' for none")
    data.add_argument("--repeats", default="error", choices=["error", "first", "any", "mean"],
                      help="annotations, wide 0/1 tables: how to read a cell holding several "
                           "annotations ('0, 1'): refuse it, or take the first, any or the mean")
    data.add_argument("--encoding", default="utf-8",
                      help="text encoding of annotations/counts/csv files (e.g. latin-1)")
    data.add_argument("--text-field",
                      help="lewidi: the field of a JSON-encoded text to use (dialogues)")
    data.add_argument("--all-labels", action="store_true",
                      help="goemotions: the 28 original labels instead of 7 clusters")
    data.add_argument("--test-size", type=float, default=0.2,
                      help="share held out for testing when DATA is a single file")
    data.add_argument("--max-train", type=int, help="subsample the training part")
    data.add_argument("--max-test", type=int, help="subsample the test part")
    model = p.add_argument_group("model and run")
    model.add_argument("--model", default="smollm2-135m-instruct",
                       help="model alias, .gguf file, checkpoint folder or hub id")
    model.add_argument("--n-shots", type=int, default=10, help="demonstrations in the prompt")
    empty = model.add_mutually_exclusive_group()
    empty.add_argument("--include-empty-demos", dest="include_empty_demos", default="auto",
                       action="store_const", const=True,
                       help="also show the model demonstrations with no label (default: when "
                            "at least a quarter of the training texts have none)")
    empty.add_argument("--no-empty-demos", dest="include_empty_demos", action="store_const",
                       const=False, help="never show demonstrations with no label (the "
                                         "paper's sampler)")
    model.add_argument("--demo-selection", default="stratified",
                       choices=("stratified", "knn", "annotator"),
                       help="stratified: one draw of demonstrations for every text; annotator: "
                            "one prompt per annotator with that annotator's own labels, "
                            "averaged (annotations with annotator ids, lewidi); knn: each "
                            "text's nearest training texts (sentence embeddings)")
    model.add_argument("--n-prompts", type=int, default=1,
                       help="stratified: independently drawn demonstration sets, probabilities "
                            "averaged")
    model.add_argument("--cache-dir", default=default_cache_dir(),
                       help="persist step records here, so that commands share work and re-runs "
                            "score nothing twice ($SKLML_CACHE_DIR, else the user cache folder; "
                            "the Python estimator reads no environment variable)")
    model.add_argument("--no-cache", dest="cache_dir", action="store_const", const=None,
                       help="keep step records in memory only")
    model.add_argument("--seed", type=int, default=0, help="seed of the split and demonstrations")
    model.add_argument("--out", default="sklml-report", help="folder for the report")
    model.add_argument("--quiet", action="store_true", help="no progress bars")
    model.add_argument("--from", dest="from_file", metavar="JSON",
                       help="repeat a run: the options recorded in its results.json (or "
                            "steps.json); options given here take precedence")


EXAMPLES = """examples:
  sklml evaluate ../shared/data/hs_brexit --format lewidi --strategies first,max,unary
  sklml analyze data.csv --format csv --labels care,purity --out steps
  sklml predict --model-dir sklml-report --input new_texts.csv --output predictions.csv
  sklml score --model-dir sklml-report --input corpus.parquet --output scores --runner ray
  sklml predict --model-dir sklml-report --input corpus.csv --store scores
  sklml cache info --cache-dir .cache/sklml
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Defaults in the help (those that say something), examples kept as written."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    """Argument errors as one line and exit status 2 (argparse adds a usage block)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"sklml: error: {message}\n")


def _package_version() -> str:
    from importlib.metadata import version

    return version("sklearn_llm_multilabel")


def _estimator_options(p: argparse.ArgumentParser) -> None:
    """Where ``predict`` and ``score`` read the fitted estimator, and what they trust in it."""
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model-dir", help="an --out folder of `sklml evaluate`")
    which.add_argument("--estimator", help="a fitted estimator file (.skops, as `sklml evaluate` "
                                           "and persistence.save_estimator write it)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="also read a joblib/pickle estimator (it runs any code it holds: only "
                        "for files you wrote yourself)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="accept an estimator saved with trust_remote_code=True (its model "
                        "folder's own Python code runs): only for a model you trust")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sklml", epilog=EXAMPLES,
                     description="From a table of annotated texts to a report, without writing "
                                 "code:\nan LLM's per-label probabilities against annotator "
                                 "proportions.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("evaluate", help="fit on the train part, score the test part, report")
    _data_options(p)
    p.add_argument("--strategies", default="first,max,hard",
                   help=f"comma-separated, from {', '.join(STRATEGIES)}")
    p.add_argument("--n-bootstrap", type=int, default=1000,
                   help="resamples of the test texts for 95%% intervals (± in the table; ▲/▼ "
                        "mark a row better/worse than the constant prior, where the paired "
                        "interval of the difference excludes 0); 0 for none; fewer than 200 "
                        "resamples or 10 test texts give none (the table says why); at most "
                        "100000")
    p.add_argument("--calibrate", action="store_true",
                   help="also fit a Platt calibrator on the training texts' scores")
    p.add_argument("--strategy", default="max", choices=STRATEGIES,
                   help="aggregation of the saved estimator, used by `sklml predict`; max is "
                        "the paper's max over label-generation steps")
    p.set_defaults(func=cmd_evaluate, parser_=p)
    p = sub.add_parser("analyze", help="step-distribution analysis with figures")
    _data_options(p)
    p.set_defaults(func=cmd_analyze, parser_=p)
    p = sub.add_parser("predict", help="per-label probabilities for the texts of a CSV")
    _estimator_options(p)
    p.add_argument("--input", required=True, help="CSV (or TSV) with a text column")
    p.add_argument("--text-column", default="text", help="column holding the texts")
    p.add_argument("--strategy", choices=STRATEGIES,
                   help="aggregation to use (default: the saved estimator's, max unless "
                        "`sklml evaluate --strategy` said otherwise)")
    p.add_argument("--output", help="CSV to write (default: standard output)")
    p.add_argument("--store", help="read step records from this folder (a `sklml score` "
                                   "output or a step cache) instead of the saved cache_dir")
    p.add_argument("--skip-invalid-texts", action="store_true",
                   help="leave out rows whose text is missing or empty (counted) instead of "
                        "stopping with an error")
    p.set_defaults(func=cmd_predict)
    p = sub.add_parser("score", help="score a corpus into a store (locally or on Ray), to "
                                     "predict, aggregate or calibrate later without the model")
    _estimator_options(p)
    p.add_argument("--input", required=True, help=".parquet, .csv or .tsv file with a text column")
    p.add_argument("--text-column", default="text", help="column holding the texts")
    p.add_argument("--output", required=True, help="the store folder (sharded Parquet when new)")
    p.add_argument("--runner", choices=("local", "ray"), default="local",
                   help="local: this process; ray: Ray Data actors (the [ray] extra: "
                        "pip install '.[ray]' in a checkout)")
    p.add_argument("--workers", type=int, default=1, help="Ray actors, one model copy each")
    p.add_argument("--gpus-per-worker", type=float, default=None, help="GPUs per Ray actor")
    p.add_argument("--batch-size", type=int, default=64, help="texts per Ray batch and shard")
    p.add_argument("--ray-address", default=None,
                   help="Ray cluster to join (default: $RAY_ADDRESS, else a local cluster)")
    p.add_argument("--no-resume", dest="resume", action="store_false",
                   help="send every text to Ray, even those the store holds")
    p.add_argument("--kinds", default="steps",
                   help="comma-separated records to compute: steps, unary, binary")
    p.add_argument("--hidden-states", action="store_true",
                   help="keep hidden states at float32 (default: float16)")
    p.add_argument("--skip-invalid-texts", action="store_true",
                   help="leave out rows whose text is missing, empty or not a string (counted) "
                        "instead of stopping with an error")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_score)
    p = sub.add_parser("cache", help="inspect or clear an on-disk step cache and the "
                                     "converted models",
                       description="The step cache is --cache-dir ($SKLML_CACHE_DIR, else "
                                   "$XDG_CACHE_HOME/sklearn_llm_multilabel). Converted GGUF "
                                   "models, one per file content, are in $SKLML_MODEL_CACHE, "
                                   "else $XDG_CACHE_HOME/sklearn_llm_multilabel-models "
                                   "(~/.cache/... when XDG_CACHE_HOME is unset).")
    p.add_argument("action", choices=("info", "clear", "prune"),
                   help="info: count entries, orphans and other files, and the converted GGUF "
                        "models; clear: remove the step cache's own entries and orphans; "
                        "prune: remove the converted GGUF models this version no longer reads "
                        "(another version's, or of a file that changed or is gone)")
    p.add_argument("--cache-dir", default=default_cache_dir(), help="the cache folder")
    p.set_defaults(func=cmd_cache)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one line on stderr, ``sklml: warning: Category: message``, no source line."""
    text = " ".join(str(message).split())
    print(f"sklml: warning: {category.__name__}: {text}", file=sys.stderr if file is None else file)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sklml`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "from_file", None):
            # the recorded options become the subcommand's defaults: those given on this
            # command line still win
            recorded = recorded_options(args.from_file, args.parser_)
            if any(getattr(args, k, None) is not None for k in _PATH_OPTIONS):
                # data named on this command line replaces the recorded data, of either form
                recorded = {k: v for k, v in recorded.items() if k not in _PATH_OPTIONS}
            args.parser_.set_defaults(**recorded)
            args = parser.parse_args(argv)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module="gguf")
            warnings.showwarning = _show_warning  # restored by catch_warnings
            return args.func(args)
    except (UsageError, SklearnLLMError, FileNotFoundError, ValueError, KeyError, ImportError) as exc:
        message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"sklml: error: {message.splitlines()[0] if message else type(exc).__name__}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
