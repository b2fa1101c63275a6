"""Use another model (a local directory, a hub id or a .gguf file) and a GPU.
==========================================================================

``model=`` takes the embedded alias, a local checkpoint directory (what
``save_pretrained`` writes), a hub id (when the hub is reachable) or a
``.gguf`` file. ``device="auto"`` picks CUDA when available, in bfloat16, with
batches sized from free GPU memory (``batch_size="auto"``); on a CPU it uses
float32 and batches of at most 512 padded tokens.

Run: ``.venv/bin/python examples/other_model_and_gpu.py --model-dir PATH``.
Without ``--model-dir``, a small randomly initialised Llama is saved to a
temporary directory first, to show the mechanics offline (its predictions are
meaningless).
"""

import argparse
import tempfile

from sklearn_llm_multilabel import LLMMultiLabelClassifier, load_model
from sklearn_llm_multilabel.datasets import load_illustrative_topics


def save_random_model(path: str) -> str:
    from sklearn_llm_multilabel.testing import make_tiny_model, make_tiny_tokenizer

    tokenizer = make_tiny_tokenizer()
    make_tiny_model(tokenizer, "llama").save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--model-dir", help="a local checkpoint directory (or any model spec)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--n-shots", type=int, default=4)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        spec = args.model_dir or save_random_model(tmp)
        loaded = load_model(spec, device=args.device)
        print(f"model {spec}: {type(loaded.model).__name__} on {loaded.device}, {loaded.dtype}")
        ds = load_illustrative_topics()
        clf = LLMMultiLabelClassifier(model=spec, labels=ds.label_names, n_shots=args.n_shots,
                                      device=args.device, batch_size="auto", show_progress=False)
        clf.fit(ds.data[:30], ds.target[:30])
        proba = clf.set_params(aggregation="max").predict_proba(ds.data[30:])
        print("max-over-generations probabilities:", proba.shape)
        plot_probabilities(proba, list(ds.label_names), spec if args.model_dir else
                           "a randomly initialised Llama (meaningless predictions)")
        return proba


def plot_probabilities(proba, names, about: str):
    """Each label's predicted probability, per test text."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3))
    image = ax.imshow(proba.T, aspect="auto", vmin=0, vmax=1, cmap="viridis")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("test text")
    ax.set_title(f"max-over-generations probabilities: {about}", fontsize=9)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    return fig


# %%
# Without ``--model-dir`` the script saves a small randomly initialised Llama and loads
# it back as a checkpoint folder, to show the mechanics offline; its predictions are
# meaningless.

if __name__ == "__main__":
    main()
