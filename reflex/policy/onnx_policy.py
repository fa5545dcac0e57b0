"""An exported policy run with ONNX Runtime: observation arrays in, un-normalised chunk out.

Each input role of ``reflex_config.json`` (docs/export-format.md) has one feeding rule here.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from reflex.errors import SetupError
from reflex.policy.providers import choose_providers
from reflex.ports import ChunkPrefix
from reflex.targets.export_manifest import ExportManifest, InputSpec, Stats, file_sha256, load_manifest

MAX_TASK_CHARS = 4096


class PolicyInputError(ValueError):
    """An observation does not fit what the export declares."""


ORT_MISSING = (
    "ONNX Runtime is not installed; install exactly one of: pip install 'reflex-runtime[cpu]' "
    "(onnxruntime) or pip install 'reflex-runtime[gpu]' (onnxruntime-gpu: CUDA and TensorRT)"
)


def import_onnxruntime() -> ModuleType:
    """The ``onnxruntime`` module, which the ``cpu`` and the ``gpu`` extra each provide."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise SetupError("target", ORT_MISSING) from exc
    return onnxruntime


class _Affine:
    """One :class:`Stats` as float64 arrays."""

    def __init__(self, stats: Stats) -> None:
        self.offset, self.scale_in, self.scale_out = stats.affine()

    def normalise(self, x: np.ndarray) -> np.ndarray:
        return (x - self.offset) / self.scale_in

    def unnormalise(self, n: np.ndarray) -> np.ndarray:
        return n * self.scale_out + self.offset


class OnnxPolicy:
    """Loads ``model.onnx`` once; ``predict`` is thread-compatible (one call at a time)."""

    def __init__(
        self,
        export_dir: Path,
        providers: list[str] | None = None,
        strict_providers: bool = False,
        seed: int | None = None,
        intra_op_threads: int = 1,
    ) -> None:
        ort = import_onnxruntime()
        self.export_dir = export_dir
        self.manifest: ExportManifest = load_manifest(export_dir)
        model_path = export_dir / self.manifest.model_file
        if not model_path.is_file():
            raise FileNotFoundError(f"{model_path} not found (declared by reflex_config.json)")
        self.model_hash = file_sha256(model_path)
        chosen = choose_providers(ort.get_available_providers(), providers, strict_providers)
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(model_path), options, providers=chosen)
        self.providers = tuple(self.session.get_providers())
        self.seed = seed if seed is not None else self.manifest.seed
        self._check_graph()
        norm = self.manifest.normalization
        self._state_norm = _Affine(norm.state) if norm.state else None
        self._action_norm = _Affine(norm.action) if norm.action else None
        self._image_norm = {cam: _Affine(s) for cam, s in norm.images.items()}
        self._tokenizer = self._load_tokenizer() if self.manifest.has_text() else None

    # -- public ---------------------------------------------------------------------------
    def predict(
        self, state: np.ndarray, images: dict[str, np.ndarray], step: int, task: str = "",
        prefix: ChunkPrefix | None = None,
    ) -> np.ndarray:
        """One chunk, shape (chunk_length, action_dim), float64, in robot units."""
        images_b = {k: v[None] for k, v in images.items()}
        return self.predict_batch(state[None], images_b, [step], [task], prefixes=[prefix])[0]

    def predict_batch(
        self,
        states: np.ndarray,
        images: dict[str, np.ndarray],
        steps: list[int],
        tasks: list[str] | None = None,
        noise: dict[str, np.ndarray] | None = None,
        prefixes: list[ChunkPrefix | None] | None = None,
    ) -> np.ndarray:
        """Chunks for a batch: states (B, state_dim), images name -> (B, H, W, 3) uint8 RGB.

        ``noise`` (input name -> (B, *shape)) replaces the seeded noise, e.g. to re-run stored
        fixtures; ``tasks`` are the instructions of a model with a text input; ``prefixes`` the
        plans being executed, for a model with prefix inputs (None: no plan yet).
        """
        feeds = self.feeds(states, images, steps, tasks, noise, prefixes)
        batch = len(steps)
        if self._fixed_batch_one and batch > 1:  # a graph exported for one observation at a time
            outs = [self.session.run([self.manifest.output], {k: v[i : i + 1] for k, v in feeds.items()})[0]
                    for i in range(batch)]
            out = np.concatenate(outs)
        else:
            (out,) = self.session.run([self.manifest.output], feeds)
        chunk = np.asarray(out, dtype=np.float64)
        if self._action_norm is not None:
            chunk = self._action_norm.unnormalise(chunk)
        return chunk

    def feeds(
        self,
        states: np.ndarray,
        images: dict[str, np.ndarray],
        steps: list[int],
        tasks: list[str] | None = None,
        noise: dict[str, np.ndarray] | None = None,
        prefixes: list[ChunkPrefix | None] | None = None,
    ) -> dict[str, np.ndarray]:
        """The ONNX feeds for a batch, one rule per input role."""
        m = self.manifest
        states = np.asarray(states, dtype=np.float64)
        if states.ndim != 2 or states.shape[1] != m.state_dim:
            raise PolicyInputError(f"state has shape {states.shape[1:]}, expected ({m.state_dim},)")
        if not np.all(np.isfinite(states)):
            raise PolicyInputError("state contains NaN or Inf")
        batch = states.shape[0]
        text: tuple[np.ndarray, np.ndarray] | None = None
        if self._tokenizer is not None:
            text = self.tokenize(tasks if tasks is not None else [""] * batch)
        feeds: dict[str, np.ndarray] = {}
        prefix_feeds = self._prefix_feeds(states, prefixes) if m.has_prefix() else None
        noise_index = 0
        for spec in m.inputs:
            if spec.role == "state":
                s = states if self._state_norm is None else self._state_norm.normalise(states)
                feeds[spec.name] = _with_history(s.astype(np.float32), spec)
            elif spec.role == "image":
                feeds[spec.name] = _with_history(self._image_feed(spec, images), spec)
            elif spec.role == "noise":
                given = (noise or {}).get(spec.name)
                feeds[spec.name] = (
                    self._given_noise(spec, given, batch) if given is not None
                    else self.noise(steps, spec, noise_index)
                )
                noise_index += 1
            elif spec.role == "text":
                assert text is not None
                feeds[spec.name] = text[0]
            elif spec.role == "text_mask":
                assert text is not None
                feeds[spec.name] = text[1]
            elif spec.role in ("prefix", "prefix_frozen", "prefix_weights"):
                assert prefix_feeds is not None
                feeds[spec.name] = prefix_feeds[spec.role]
            else:  # a role the manifest accepts but this runtime cannot feed: a bug, never silent
                raise PolicyInputError(f"input '{spec.name}': no feeding rule for role '{spec.role}'")
        return feeds

    def noise(self, steps: list[int], spec: InputSpec | None = None, index: int = 0) -> np.ndarray:
        """Noise keyed on (seed, observation step[, input index]): a replay of the same steps sees
        the same noise. The first noise input keeps the (seed, step) key of format version 1."""
        m = self.manifest
        shape = m.noise_shape(spec) if spec is not None else (m.chunk_length, m.action_dim)
        seed = 0 if self.seed is None else self.seed
        rows = [
            np.random.default_rng([seed, step] if index == 0 else [seed, step, index]).standard_normal(shape)
            for step in steps
        ]
        return np.stack(rows).astype(np.float32)

    def tokenize(self, tasks: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, attention mask), each int64 (B, max_length)."""
        assert self._tokenizer is not None
        for task in tasks:
            if not isinstance(task, str) or len(task) > MAX_TASK_CHARS:
                raise PolicyInputError(f"task must be a string of at most {MAX_TASK_CHARS} characters")
        encodings = self._tokenizer.encode_batch(list(tasks))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return ids, mask

    def _prefix_feeds(
        self, states: np.ndarray, prefixes: list[ChunkPrefix | None] | None
    ) -> dict[str, np.ndarray]:
        """RTC prefix inputs (docs/execution.md). Without a plan (the first chunk, serve, replay)
        the prefix is the state held for the whole chunk with nothing frozen and zero weights:
        a valid value, never zeros (a zero decodes to the dataset mean)."""
        m = self.manifest
        batch, length, dim = states.shape[0], m.chunk_length, m.action_dim
        actions = np.empty((batch, length, dim))
        frozen = np.zeros(batch, dtype=np.int64)
        weights = np.zeros((batch, length), dtype=np.float32)
        for b in range(batch):
            prefix = prefixes[b] if prefixes is not None and b < len(prefixes) else None
            if prefix is None:
                if m.state_dim != dim:
                    raise PolicyInputError("a prefix without a plan needs state_dim == action_dim")
                actions[b] = states[b]
                continue
            rows = np.asarray(prefix.actions, dtype=np.float64)
            w = np.asarray(prefix.weights, dtype=np.float64)
            if rows.shape != (length, dim) or w.shape != (length,) or not 0 <= prefix.frozen <= length:
                raise PolicyInputError(f"prefix has shape {rows.shape} / weights {w.shape} / frozen "
                                       f"{prefix.frozen}, expected ({length}, {dim}) / ({length},) / 0..{length}")
            if not (np.all(np.isfinite(rows)) and np.all(np.isfinite(w))):
                raise PolicyInputError("prefix contains NaN or Inf")
            actions[b], frozen[b], weights[b] = rows, prefix.frozen, w
        if self._action_norm is not None:
            actions = self._action_norm.normalise(actions)
        return {"prefix": actions.astype(np.float32), "prefix_frozen": frozen, "prefix_weights": weights}

    # -- helpers --------------------------------------------------------------------------
    def _load_tokenizer(self) -> Any:
        spec = self.manifest.tokenizer
        assert spec is not None
        path = self.export_dir / spec.file
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found (declared by reflex_config.json tokenizer.file)")
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ImportError("this export has a text input: install the 'tokenizers' package") from exc
        tok = Tokenizer.from_file(str(path))
        tok.enable_truncation(spec.max_length)
        tok.enable_padding(
            length=spec.max_length, pad_id=spec.pad_id, direction=spec.padding_side, pad_token="[PAD]"
        )
        return tok

    def _given_noise(self, spec: InputSpec, given: np.ndarray, batch: int) -> np.ndarray:
        expected = (batch, *self.manifest.noise_shape(spec))
        arr = np.asarray(given, dtype=np.float32)
        if arr.shape != expected:
            raise PolicyInputError(f"noise '{spec.name}' has shape {arr.shape}, expected {expected}")
        return arr

    def _image_feed(self, spec: InputSpec, images: dict[str, np.ndarray]) -> np.ndarray:
        camera = spec.camera
        assert camera is not None
        if camera not in images:
            raise PolicyInputError(f"image input needs camera '{camera}', which is missing")
        batch = np.asarray(images[camera])
        if batch.ndim != 4 or batch.shape[1:] != (spec.height, spec.width, 3) or batch.dtype != np.uint8:
            raise PolicyInputError(
                f"camera '{camera}' gives {batch.shape[1:]} {batch.dtype}, "
                f"expected ({spec.height}, {spec.width}, 3) uint8"
            )
        nchw = np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
        if spec.dtype == "uint8":
            return nchw
        pixels = nchw.astype(np.float32) * np.float32(1.0 / 255.0)
        norm = self._image_norm.get(camera)
        if norm is None:
            return pixels
        offset = norm.offset.astype(np.float32).reshape(1, 3, 1, 1)
        scale = norm.scale_in.astype(np.float32).reshape(1, 3, 1, 1)
        return (pixels - offset) / scale

    def _check_graph(self) -> None:
        m = self.manifest
        graph_inputs = {i.name for i in self.session.get_inputs()}
        self._fixed_batch_one = all(i.shape and i.shape[0] == 1 for i in self.session.get_inputs())
        declared = {i.name for i in m.inputs}
        if graph_inputs != declared:
            raise ValueError(
                f"reflex_config.json declares inputs {sorted(declared)} but model.onnx has {sorted(graph_inputs)}"
            )
        outputs = {o.name: o.shape for o in self.session.get_outputs()}
        if m.output not in outputs:
            raise ValueError(f"model.onnx has no output '{m.output}' (has {sorted(outputs)})")
        shape = outputs[m.output]
        expected = (m.chunk_length, m.action_dim)
        fixed_mismatch = len(shape) == 3 and any(
            isinstance(d, int) and d != e for d, e in zip(shape[1:], expected, strict=True)
        )
        if len(shape) != 3 or fixed_mismatch:
            raise ValueError(
                f"output '{m.output}' has shape {shape}, expected (batch, {expected[0]}, {expected[1]})"
            )


def _with_history(x: np.ndarray, spec: InputSpec) -> np.ndarray:
    """(B, ...) -> (B, history, ...) by repeating the current observation, when declared."""
    if spec.history == 1:
        return x
    return np.ascontiguousarray(np.repeat(x[:, None], spec.history, axis=1))
