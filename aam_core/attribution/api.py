"""``explain(...)``: the one function ``aam explain`` and ``aam_core.attribution`` run."""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from pathlib import Path

import attrs
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from aam_core.attribution.data import ExplainData, load_explain_data
from aam_core.attribution.engine import sample_batches
from aam_core.attribution.methods import DEFAULT_METHOD, Method, get_method
from aam_core.attribution.results import ATTENTION, Explanation
from aam_core.errors import ConfigError, DataError
from aam_core.loading import LoadedModel
from aam_core.outdir import check_output_dir

log = logging.getLogger("aam")

IMPORTANCE_DEFINITION = (
    "mean over the explained samples of |attribution| in original units, 0 where the sample "
    "lacks the ASV or the model does not read it (beyond max_asvs)"
)
ATTENTION_IMPORTANCE = (
    "mean attention-pooling weight over the explained samples (attention, not attribution)"
)


@attrs.frozen(eq=False)
class ExplainResult:
    """What ``explain`` computed and wrote."""

    explanation: Explanation
    #: Global importance per feature ID, highest first (``importance.tsv``).
    importance: pd.Series
    #: ``{name: path}`` of the files written (empty without an output directory).
    files: dict[str, Path]
    #: Deletion curves (``faithfulness.json``), or None.
    faithfulness: dict | None
    #: Seconds spent computing the values (not loading, not writing).
    seconds: float


def _check_positive(value: int, flag: str) -> int:
    if int(value) < 1:
        raise ConfigError(f"{flag} must be at least 1, got {value}.")
    return int(value)


def compute(
    data: ExplainData,
    method: Method,
    *,
    steps: int = 32,
    batch_size: int | None = None,
    progress: bool = True,
) -> Explanation:
    """Run ``method`` over every explained sample of ``data``."""
    options = {"steps": steps}
    kwargs = {k: options[k] for k in method.options}
    model = data.loaded.model
    training = model.training
    model.eval()
    parts, features, abundance = [], [], []
    bar = tqdm(
        total=len(data.rows),
        desc=f"explain ({method.name})",
        unit="sample",
        disable=None if progress else True,
        leave=False,
    )
    try:
        for sb in sample_batches(data, batch_size):
            parts.append(method.run(data, sb, **kwargs))
            totals = sb.batch.totals.cpu().numpy().astype(np.float64)
            features.extend(sb.features)
            abundance.extend(c / max(t, 1.0) for c, t in zip(sb.counts, totals, strict=True))
            bar.update(sb.size)
    finally:
        bar.close()
        model.train(training)
    dataset = data.dataset
    return Explanation.collect(
        parts,
        method=method.name,
        kind=method.kind,
        units="attention-pooling weight" if method.kind == ATTENTION else data.target.units,
        baseline_meaning=method.baseline,
        sample_ids=data.sample_ids,
        rows=data.rows,
        features=features,
        abundance=abundance,
        feature_ids=dataset.feature_ids,
        sequences=dataset.sequences,
        taxonomy=data.taxonomy,
    )


def _finite(value: float) -> float | None:
    return None if not math.isfinite(value) else float(value)


def _summary(explanation: Explanation, data: ExplainData, seconds: float, top: int) -> dict:
    importance = explanation.importance()
    attention = explanation.kind == ATTENTION
    residual = np.abs(explanation.residual()) if not attention else np.zeros(0)
    position = {str(f): i for i, f in enumerate(explanation.feature_ids)}
    summary = {
        "method": explanation.method,
        "kind": explanation.kind,
        "values": explanation.units,
        "baseline": explanation.baseline_meaning,
        "importance": ATTENTION_IMPORTANCE if attention else IMPORTANCE_DEFINITION,
        "samples": len(explanation),
        "features": int(len(importance)),
        "seconds": round(seconds, 3),
        "samples_per_second": _finite(len(explanation) / seconds) if seconds > 0 else None,
        "model_max_asvs": data.loaded.config.data.max_asvs,
        "top": [
            {
                "feature": f,
                "taxonomy": str(explanation.taxonomy[position[f]]),
                "importance": float(v),
            }
            for f, v in importance.iloc[:top].items()
        ],
    }
    if not attention:
        summary["residual"] = {
            "meaning": "prediction - baseline - sum of attributions: interactions (occlusion) "
            "or integration error (integrated-gradients)",
            "mean_abs": _finite(float(residual.mean())) if len(residual) else None,
            "max_abs": _finite(float(residual.max())) if len(residual) else None,
        }
    return summary


def explain(
    model: LoadedModel | str | os.PathLike,
    table: str | os.PathLike,
    *,
    output_dir: str | os.PathLike | None = None,
    metadata: str | os.PathLike | None = None,
    sequences: str | os.PathLike | None = None,
    method: str = DEFAULT_METHOD,
    samples=None,
    top: int = 20,
    sample: str | None = None,
    faithfulness: bool = False,
    steps: int = 32,
    batch_size: int | None = None,
    device: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> ExplainResult:
    """Which ASVs drive each sample's prediction: per-sample, per-ASV values of ``method``
    (``integrated-gradients``, the default; ``occlusion``; ``attention``), a global importance
    per ASV and, with ``output_dir``, the files and figures ``aam explain`` writes.

    ``model`` is a checkpoint path or a :class:`LoadedModel`; ``metadata`` supplies the model's
    categorical inputs (and ``actual`` in ``samples.tsv``); ``samples`` is a list of sample IDs
    or a file of one per line (default: every sample with reads). ``sample`` picks the waterfall's
    sample (default: the first explained). ``faithfulness`` adds deletion curves
    (``faithfulness.json``). ``steps`` is the integrated-gradients quadrature size.

    Everything is checked — method, output directory, checkpoint, table, samples — before any
    work starts, and nothing is written unless all of it succeeds.
    """
    chosen = get_method(method)
    top = _check_positive(top, "--top")
    steps = _check_positive(steps, "--steps")
    if batch_size is not None:
        batch_size = _check_positive(batch_size, "--batch-size")
    folder = None if output_dir is None else check_output_dir(output_dir, force)
    data = load_explain_data(
        model, table, metadata=metadata, sequences=sequences, samples=samples, device=device
    )
    if chosen.kind == ATTENTION:
        from aam_core.attribution.attention import check_pooling

        check_pooling(data)
    if sample is not None and str(sample) not in set(data.sample_ids):
        raise DataError(f"--sample '{sample}' is not among the explained samples of {table}.")

    started = time.perf_counter()
    explanation = compute(data, chosen, steps=steps, batch_size=batch_size, progress=progress)
    seconds = time.perf_counter() - started
    curves = None
    if faithfulness:
        from aam_core.attribution.faithfulness import deletion_curves

        with tqdm(
            total=len(data.rows),
            desc="deletion curves",
            unit="sample",
            disable=None if progress else True,
            leave=False,
        ) as bar:
            curves = deletion_curves(data, explanation, batch_size=batch_size, advance=bar.update)
    files: dict[str, Path] = {}
    if folder is not None:
        files = write_outputs(
            explanation, data, folder, top=top, sample=sample, curves=curves, seconds=seconds
        )
        log.debug("Explained %d samples with %s in %.1f s.", len(explanation), chosen.name, seconds)
    return ExplainResult(
        explanation=explanation,
        importance=explanation.importance(),
        files=files,
        faithfulness=curves,
        seconds=seconds,
    )


def write_outputs(
    explanation: Explanation,
    data: ExplainData,
    folder: Path,
    *,
    top: int,
    sample: str | None,
    curves: dict | None,
    seconds: float,
) -> dict[str, Path]:
    """Tables, figures, ``faithfulness.json`` and ``summary.json`` into ``folder``.

    Everything is written into a staging folder inside ``folder`` first and moved into place
    only once all of it is written, so a failure half-way leaves nothing behind."""
    created = not folder.exists()
    stage = folder / f".explain-staging.{os.getpid()}"
    try:
        staged = _write_all(
            explanation, data, stage, top=top, sample=sample, curves=curves, seconds=seconds
        )
        files = {}
        for name, path in staged.items():
            target = folder / path.relative_to(stage)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
            files[name] = target
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if created:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    shutil.rmtree(stage, ignore_errors=True)
    return files


def _write_all(
    explanation: Explanation,
    data: ExplainData,
    folder: Path,
    *,
    top: int,
    sample: str | None,
    curves: dict | None,
    seconds: float,
) -> dict[str, Path]:
    from aam_core.attribution import figures
    from aam_core.attribution.outputs import write_json, write_tables

    folder.mkdir(parents=True, exist_ok=True)
    files = write_tables(explanation, folder, data.actual())
    files["importance_plot"] = figures.save(
        figures.importance_figure(explanation, top), folder / "figures" / "top_features.png"
    )
    chosen = None
    if explanation.kind != ATTENTION:
        chosen = str(sample) if sample is not None else str(explanation.sample_ids[0])
        files["waterfall"] = figures.save(
            figures.waterfall_figure(explanation, chosen), folder / "figures" / "waterfall.png"
        )
    if curves is not None:
        files["faithfulness"] = write_json(curves, folder / "faithfulness.json")
    summary = _summary(explanation, data, seconds, top)
    summary["waterfall_sample"] = chosen
    summary["files"] = sorted(
        str(p.relative_to(folder)) for p in [*files.values(), folder / "summary.json"]
    )
    files["summary"] = write_json(summary, folder / "summary.json")
    return files
