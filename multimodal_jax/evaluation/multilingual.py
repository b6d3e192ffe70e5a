"""Zero-shot in every language, transfer to one language, and cross-lingual retrieval on the
built-in dataset's multilingual variant (``captioned_shapes/32px_multilingual``).

Metrics, ``<lang>`` being the ISO 639-1 codes of ``config.evaluation.languages``:

  zeroshot/<split>/<lang>/top1, top5   single-object images of each zero-shot split; the 64
                                       classes prompted in that language (its prompt ensemble)
  zeroshot/xfer/<x>/top1               the transfer language x on the test images of the pairs
                                       its training captions never name (``XFER_PAIRS``)
  zeroshot/xfer/<x>/seen_top1          x on the test images of the pairs it was shown
  zeroshot/xfer/<x>/others_top1        the other languages (mean) on x's unseen-pair images
  retrieval/<split>/<a>_to_<b>/r1      a caption in a retrieves, among the captions in b, the
                                       one of its own image (the image "captioned in b")
  retrieval/<split>/<a>/t2i_r1, i2t_r1 a caption in a retrieves its image, and back
  retrieval/<split>/cross_lingual_r1   the mean of a_to_b over a != b

Captions with the same gloss say the same thing ("a red circle." in any language, whatever the
template), so they count as the same text: the English retrieval's identical-caption rule,
extended to paraphrases and translations. The table is also written as JSON and a PNG.
"""

import json
import logging
from typing import Callable
from typing import Dict
from typing import Optional
from typing import Sequence
from typing import Tuple

import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from multimodal_jax import paths
from multimodal_jax.data import datasets
from multimodal_jax.data import shapes_builder
from multimodal_jax.data import shapes_multilingual
from multimodal_jax.data.shapes_render import COLORS
from multimodal_jax.data.shapes_render import SHAPES
from multimodal_jax.evaluation import figures
from multimodal_jax.evaluation import retrieval
from multimodal_jax.evaluation import zeroshot

log = logging.getLogger(__name__)
EncodeTexts = Callable[[Sequence[str]], np.ndarray]  # texts -> L2-normalised [N, D]
EncodeImages = Callable[[str], np.ndarray]  # split -> [N, D], in the split's file order
_META = ("captions", "gloss", "label", "num_objects", "shape", "color")


def dataset_config(data_cfg: ml_collections.ConfigDict):
    """The built-in dataset's ``ShapesConfig`` named by ``data.name`` (its languages, its
    transfer language), or a ValueError when the data is not a multilingual built-in variant."""
    name = datasets.field(data_cfg, "name") or ""
    if datasets.is_builtin(name):
        variant = name.split("/")[1].split(":")[0] if "/" in name else "32px"
        found = {c.name: c for c in shapes_builder.CaptionedShapes.BUILDER_CONFIGS}.get(variant)
        if found is not None and found.languages:
            return found
    raise ValueError(
        f"config.evaluation.languages needs the built-in multilingual dataset, but "
        f"config.data.name={name!r}; use 'captioned_shapes/32px_multilingual' or set "
        "config.evaluation.languages=().")


def check_config(config: ml_collections.ConfigDict) -> None:
    """``evaluation.languages``: empty (off), or languages the configured dataset has."""
    languages = tuple(config.evaluation.get("languages", ()) or ())
    if not languages:
        return
    available = dataset_config(config.data).languages
    unknown = [code for code in languages if code not in available]
    if unknown:
        raise ValueError(f"config.evaluation.languages has {unknown}, which "
                         f"{config.data.name!r} has no captions in; choose among {available}.")


def read_split(data_cfg: ml_collections.ConfigDict, split: str) -> Dict[str, np.ndarray]:
    """The split's captions [N, languages] (str), glosses, labels, object counts, shapes and
    colours, in file order; images are not decoded."""
    builder = tfds.builder(data_cfg.name, data_dir=data_cfg.get("data_dir") or None)
    ds = builder.as_dataset(split=split, shuffle_files=False,
                            decoders={"image": tfds.decode.SkipDecoding()})
    rows = {key: [] for key in _META}
    for example in tfds.as_numpy(ds):
        for key in _META:
            rows[key].append(example[key])
    out = {key: np.asarray(value) for key, value in rows.items()}
    out["captions"] = np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(out["captions"])
    out["gloss"] = np.asarray([g.decode("utf-8") for g in out["gloss"]], object)
    return out


def class_embeddings(encode_texts: EncodeTexts, code: str) -> np.ndarray:
    """The 64 classes' embeddings [C, D] from language ``code``'s prompts, ensembled."""
    prompts = shapes_multilingual.zeroshot_prompts(code)
    flat = [prompt for per_class in prompts for prompt in per_class]
    return zeroshot.ensemble(encode_texts(flat), len(prompts))


def pair_mask(meta: Dict[str, np.ndarray], pairs) -> np.ndarray:
    """Whether each example's object 1 is one of the (shape, colour) ``pairs``."""
    return np.asarray([(SHAPES[s], COLORS[c]) in pairs for s, c in zip(meta["shape"], meta["color"])])


def zeroshot_by_language(image_emb: np.ndarray, meta: Dict[str, np.ndarray],
                         class_emb: Dict[str, np.ndarray], split: str) -> Dict[str, float]:
    """``zeroshot/<split>/<lang>/top1`` and ``top5`` on the single-object images."""
    single = meta["num_objects"] == 1
    return {f"zeroshot/{split}/{code}/{k}": v for code, emb in class_emb.items()
            for k, v in zeroshot.zeroshot_metrics(image_emb, meta["label"], emb, single).items()}


def transfer(image_emb: np.ndarray, meta: Dict[str, np.ndarray], class_emb: Dict[str, np.ndarray],
             language: str, withheld_pairs) -> Dict[str, float]:
    """Zero-shot of the transfer ``language`` on single-object images of the pairs its
    training captions never named, against the pairs it saw and against the other languages."""
    single = meta["num_objects"] == 1
    unseen = single & pair_mask(meta, withheld_pairs)
    seen = single & ~unseen

    def top1(code, mask):
        return zeroshot.zeroshot_metrics(image_emb, meta["label"], class_emb[code], mask)["top1"]

    others = [top1(code, unseen) for code in class_emb if code != language]
    metrics = {f"zeroshot/xfer/{language}/top1": top1(language, unseen),
               f"zeroshot/xfer/{language}/seen_top1": top1(language, seen)}
    if others:
        metrics[f"zeroshot/xfer/{language}/others_top1"] = float(np.mean(others))
    return metrics


def retrieval_table(text_emb: Dict[str, np.ndarray], image_emb: np.ndarray,
                    gloss: np.ndarray) -> np.ndarray:
    """R@1 [L + 1, L + 1] over the languages then "image": row = query, column = gallery.

    Text -> text off the diagonal (a caption in a finds, among the captions in b, one that says
    what it says), text -> image in the last column, image -> text in the last row; the
    diagonal (a query against its own gallery) is NaN.
    """
    codes = list(text_emb)
    embs = [text_emb[c] for c in codes] + [image_emb]
    n = len(embs)
    table = np.full((n, n), np.nan)
    for a in range(n):
        for b in range(a + 1, n):
            # Gallery b in the "image" slot, queries a in the "text" slot: t2i = a -> b.
            recall = retrieval.retrieval_metrics(embs[b], embs[a], ks=(1,), text_ids=gloss)
            table[a, b], table[b, a] = recall["t2i_r1"], recall["i2t_r1"]
    return table


def table_metrics(table: np.ndarray, codes: Sequence[str], split: str) -> Dict[str, float]:
    """The retrieval table as metrics (see the module doc)."""
    n = len(codes)
    metrics = {f"retrieval/{split}/{a}_to_{b}/r1": float(table[i, j])
               for i, a in enumerate(codes) for j, b in enumerate(codes) if i != j}
    for i, code in enumerate(codes):
        metrics[f"retrieval/{split}/{code}/t2i_r1"] = float(table[i, n])
        metrics[f"retrieval/{split}/{code}/i2t_r1"] = float(table[n, i])
    if n > 1:
        metrics[f"retrieval/{split}/cross_lingual_r1"] = float(np.nanmean(table[:n, :n]))
    return metrics


def format_table(table: np.ndarray, labels: Sequence[str]) -> str:
    """The table as fixed-width text, percentages, "-" on the diagonal."""
    lines = ["query \\ gallery " + " ".join(f"{b:>6}" for b in labels)]
    for label, row in zip(labels, table):
        cells = " ".join("     -" if np.isnan(v) else f"{100 * v:6.1f}" for v in row)
        lines.append(f"{label:>15} {cells}")
    return "\n".join(lines)


def write_table(table: np.ndarray, labels: Sequence[str], split: str, count: int,
                path_stem: str) -> Tuple[str, str]:
    """Writes ``<stem>.json`` (the matrix, row = query, column = gallery) and ``<stem>.png``."""
    record = {"split": split, "examples": count, "metric": "R@1", "rows": "query",
              "columns": "gallery", "labels": list(labels),
              "r1": [[None if np.isnan(v) else round(float(v), 4) for v in row] for row in table]}
    json_path = path_stem + ".json"
    with paths.as_path(json_path).open("w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
    png_path = figures.score_table_png(
        table, labels, labels, path_stem + ".png",
        title=f"Cross-lingual retrieval R@1, {count} {split} examples",
        subtitle="row: the query's language, column: the gallery's (image: the images)")
    return json_path, png_path


def evaluate(config: ml_collections.ConfigDict, encode_images: EncodeImages,
             encode_texts: EncodeTexts, picture_path: Optional[str] = None) -> Dict[str, float]:
    """Every metric of the module doc; the table's JSON and PNG beside ``picture_path``."""
    ev, data = config.evaluation, config.data
    shapes_config = dataset_config(data)
    codes = tuple(ev.languages)
    class_emb = {code: class_embeddings(encode_texts, code) for code in codes}
    metrics, cache = {}, {}

    def split_data(split):
        if split not in cache:
            cache[split] = (encode_images(split), read_split(data, split))
        return cache[split]

    for split in ev.zeroshot_splits:
        metrics.update(zeroshot_by_language(*split_data(split), class_emb, split))
    xfer = shapes_config.xfer_language
    if xfer in codes and "test" in ev.zeroshot_splits:
        metrics.update(transfer(*split_data("test"), class_emb, xfer, shapes_builder.XFER_PAIRS))
    split = ev.retrieval_split
    image_emb, meta = split_data(split)
    column = [shapes_config.languages.index(code) for code in codes]
    keep = np.all(meta["captions"][:, column] != "", axis=1)  # train: withheld captions
    rows = np.nonzero(keep)[0][: ev.retrieval_examples]
    text_emb = {code: encode_texts(list(meta["captions"][rows, i])) for code, i in zip(codes, column)}
    table = retrieval_table(text_emb, image_emb[rows], meta["gloss"][rows])
    metrics.update(table_metrics(table, codes, split))
    labels = list(codes) + ["image"]
    log.info("Cross-lingual retrieval R@1 (%s, %d examples):\n%s", split, len(rows),
             format_table(table, labels))
    if picture_path:
        write_table(table, labels, split, len(rows),
                    picture_path.replace(".png", f"_cross_lingual_{split}"))
    return metrics
