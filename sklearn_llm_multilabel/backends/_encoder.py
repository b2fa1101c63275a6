"""Encoder checkpoints for fine-tuning: a fresh, trainable copy per call (never shared)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import _state
from ..exceptions import MissingModelPackageError, ModelLoadError
from ._load import _HUB_ID, _first_line
from ._specs import ENCODER_ALIASES, package_folder


def encoder_source(spec: str) -> str:
    """The folder (or hub id) an encoder spec names: an alias, a local directory or a hub id.

    Examples
    --------
    >>> encoder_source("no/such-model")
    'no/such-model'
    """
    if spec in ENCODER_ALIASES:
        package, folder, install = ENCODER_ALIASES[spec]
        path = package_folder(spec, package, install) / folder
        if not (path / "config.json").is_file():
            raise MissingModelPackageError(f"{path} has no config.json; reinstall with: {install}")
        return str(path)
    if Path(spec).expanduser().is_dir():
        return str(Path(spec).expanduser())
    if _HUB_ID.match(spec):
        return spec
    raise ModelLoadError(
        f"Unknown encoder spec {spec!r}. Pass the alias {sorted(ENCODER_ALIASES)}, a local "
        "directory with a transformers checkpoint, or a hub id in the local Hugging Face cache.")


def load_encoder(spec: str, *, show_progress: bool = True):
    """``(model, tokenizer)``: a new ``AutoModel`` (training mode) and its tokenizer
    (transformers' loading bar only with ``show_progress``)."""
    from transformers import AutoModel, AutoTokenizer

    source = encoder_source(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        with _state.quiet_transformers(not show_progress):
            model = AutoModel.from_pretrained(source)
    except Exception as exc:  # transformers raises many types here; re-raised with the path
        raise ModelLoadError(
            f"Could not load encoder {spec!r} from {source}: {type(exc).__name__}: "
            f"{_first_line(exc)}. A checkpoint directory needs its config, weights and "
            "tokenizer files; without network access, hub ids must already be in the local "
            "Hugging Face cache.") from exc
    if tokenizer.pad_token is None:
        raise ModelLoadError(f"The tokenizer of encoder {spec!r} has no padding token.")
    return model.train(), tokenizer


class EncoderRun:
    """A fine-tuned (or fine-tuning) encoder with its label head: batched forwards.

    Parameters
    ----------
    encoder : transformers.PreTrainedModel
    head : torch.nn.Linear
        One logit per label, from the mean-pooled token states.
    tokenizer : transformers tokenizer
    label_prefix : str or None
        The first input segment (the label names), or None for the text alone.
    max_length : int
    batch_size : int
    """

    def __init__(self, encoder, head, tokenizer, label_prefix: str | None, max_length: int,
                 batch_size: int):
        self.encoder, self.head, self.tokenizer = encoder, head, tokenizer
        self.label_prefix, self.max_length, self.batch_size = label_prefix, max_length, batch_size

    @property
    def device(self):
        return next(self.encoder.parameters()).device

    def encode(self, texts: list[str], device):
        if self.label_prefix is not None:
            return self.tokenizer([self.label_prefix] * len(texts), texts, padding=True,
                                  truncation="only_second", max_length=self.max_length,
                                  return_tensors="pt").to(device)
        return self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                              return_tensors="pt").to(device)

    def forward(self, texts: list[str], device):
        """(logits (B, L), mean-pooled token states (B, hidden)) for a batch of texts."""
        import torch

        batch = self.encode(texts, device)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                            enabled=device.type == "cuda"):
            hidden = self.encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = ((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).float()
        return self.head(pooled), pooled

    def lengths(self, texts: list[str]) -> np.ndarray:
        """Token counts of the texts (capped at ``max_length``), for length-sorted batches."""
        ids = self.tokenizer(texts, add_special_tokens=False, truncation=True,
                             max_length=self.max_length)["input_ids"]
        return np.array([len(i) for i in ids])

    def predict_batches(self, texts: list[str], device=None) -> tuple[np.ndarray, np.ndarray]:
        """Logits and pooled states in the order of ``texts``, batched by length."""
        import torch

        device = self.device if device is None else device
        order = np.argsort(-self.lengths(texts), kind="stable")
        logits = np.zeros((len(texts), self.head.out_features), dtype=np.float32)
        pooled = np.zeros((len(texts), self.encoder.config.hidden_size), dtype=np.float32)
        was_training = self.encoder.training
        self.encoder.eval()
        try:
            with torch.inference_mode():
                for start in range(0, len(texts), self.batch_size):
                    rows = order[start:start + self.batch_size]
                    z, h = self.forward([texts[i] for i in rows], device)
                    logits[rows] = z.float().cpu().numpy()
                    pooled[rows] = h.cpu().numpy()
        finally:
            self.encoder.train(was_training)
        return logits, pooled

    def soft_bce(self, texts: list[str], Y: np.ndarray, device) -> float:
        z, _ = self.predict_batches(texts, device)
        # log σ(z) and log(1 − σ(z)) computed stably
        return float(np.mean(Y * np.logaddexp(0, -z) + (1 - Y) * np.logaddexp(0, z)))


@dataclass(frozen=True)
class EncoderTraining:
    """What :func:`train_encoder` did: per-epoch curves, epochs run, the epoch kept."""

    train_loss_curve: list
    validation_loss_curve: list
    n_epochs: int
    best_epoch: int


def train_encoder(run: EncoderRun, texts: list[str], Y: np.ndarray, *, learning_rate: float,
                  weight_decay: float, max_epochs: int, patience: int,
                  validation_fraction: float, rng, device,
                  show_progress: bool = False) -> EncoderTraining:
    """Fine-tune ``run``'s encoder and head on soft targets (binary cross-entropy).

    AdamW (the head at ten times ``learning_rate``), length-bucketed batches,
    early stopping on a held-out share (at least 5 texts; none below 20
    texts), and the best epoch's weights kept. The encoder ends in
    evaluation mode.
    """
    import torch
    from tqdm.auto import tqdm

    encoder, head = run.encoder, run.head
    order = rng.permutation(len(texts))
    n_val = int(round(validation_fraction * len(texts)))
    if len(texts) < 20 or n_val < 5:
        n_val = 0
    val_idx, train_idx = order[:n_val], order[n_val:]
    optimizer = torch.optim.AdamW(
        [{"params": encoder.parameters(), "lr": learning_rate},
         {"params": head.parameters(), "lr": 10 * learning_rate}],
        weight_decay=weight_decay)
    targets = torch.as_tensor(Y, dtype=torch.float32)
    lengths = run.lengths(texts)
    n_batches = -(-len(train_idx) // run.batch_size)
    train_curve, val_curve = [], []
    best, best_state, waited, n_epochs, best_epoch = np.inf, None, 0, 0, 0
    bar = tqdm(total=max_epochs * n_batches, desc="Fine-tuning", unit="batch",
               disable=not show_progress)
    try:
        for epoch in range(1, max_epochs + 1):
            encoder.train()
            losses = []
            for batch in length_buckets(rng.permutation(train_idx), lengths, run.batch_size, rng):
                logits, _ = run.forward([texts[i] for i in batch], device)
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    logits.float(), targets[batch].to(device))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                value = float(loss.detach())
                losses.append(value * len(batch))
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{value:.4f}")
            train_curve.append(sum(losses) / len(train_idx))
            n_epochs = epoch
            if not n_val:
                best_epoch = epoch
                continue
            val_loss = run.soft_bce([texts[i] for i in val_idx], Y[val_idx], device)
            val_curve.append(val_loss)
            if val_loss < best - 1e-6:
                best, waited, best_epoch = val_loss, 0, epoch
                best_state = ({k: v.detach().clone() for k, v in encoder.state_dict().items()},
                              {k: v.detach().clone() for k, v in head.state_dict().items()})
            else:
                waited += 1
                if waited >= patience:
                    break
    finally:
        bar.close()
    if best_state is not None:
        encoder.load_state_dict(best_state[0])
        head.load_state_dict(best_state[1])
    encoder.eval()
    return EncoderTraining(train_curve, val_curve, n_epochs, best_epoch)


def length_buckets(indices: np.ndarray, lengths: np.ndarray, batch_size: int, rng,
                    pool: int = 20) -> list[np.ndarray]:
    """Batches of similar length: ``indices`` (already shuffled) in pools of ``pool``
    batches, sorted by length within a pool, cut into batches, the batches shuffled.

    Padding is what costs on a CPU: random batches of short and long texts are padded to
    the longest one. Every index appears in exactly one batch.

    Examples
    --------
    >>> batches = length_buckets(np.arange(6), np.array([5, 1, 4, 2, 6, 3]), 2,
    ...                           np.random.RandomState(0))
    >>> sorted(sorted(b.tolist()) for b in batches)
    [[0, 4], [1, 3], [2, 5]]
    """
    batches = []
    step = batch_size * pool
    for start in range(0, len(indices), step):
        chunk = indices[start:start + step]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]
