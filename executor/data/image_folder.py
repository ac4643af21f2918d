"""`image-folder`: images in class folders (CORe50, CLEAR, Tiny-ImageNet style), read with Pillow.

Layouts (`layout=`):
- `auto`: `root/train/<class>/…` with `root/test/<class>/…` or `root/val/<class>/…` if present
  (Tiny-ImageNet's `val/images` + `val_annotations.txt` also works), else `layout=classes`.
- `classes`: `root/<class>/…`; a stratified test split is drawn with `seed` (`test_fraction`).
- `nested`: `root/<group>/<class>/…` (CLEAR's time buckets, CORe50's sessions/objects). The
  training set is stored group by group in sorted order, so the `sequential` stream replays
  the groups in time order; `test_groups="s3,s7,s10"` holds whole groups out as the test set,
  otherwise a stratified split is drawn within each group.
Images are found recursively under each class folder (any format Pillow decodes: PNG, JPEG,
BMP, GIF, TIFF, WebP, PPM…), converted to RGB (`channels=3`) or grey (`channels=1`), resized to
`size × size` (bilinear) and scaled to [0, 1]. Class labels are the sorted folder names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from executor.data.base import Dataset
from executor.data.files import require_root
from executor.data.registry import register_dataset
from planner.errors import FerretError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
Entries = list[tuple[Path, str]]  # (image path, class name)


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _class_entries(folder: Path, limit: int | None) -> Entries:
    entries: Entries = []
    for class_dir in sorted(d for d in folder.iterdir() if d.is_dir()):
        entries += [(p, class_dir.name) for p in _images(class_dir)[:limit]]
    return entries


def _annotated_entries(folder: Path) -> Entries:
    """Tiny-ImageNet's validation folder: `images/` plus `val_annotations.txt` (file, class, …)."""
    entries: Entries = []
    for line_no, line in enumerate((folder / "val_annotations.txt").read_text().splitlines(), 1):
        fields = line.split("\t")
        if len(fields) < 2:
            raise FerretError(f"{folder / 'val_annotations.txt'} line {line_no}: expected 'file<TAB>class'")
        entries.append((folder / "images" / fields[0], fields[1]))
    return entries


def _read_image(path: Path, size: int, mode: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            pixels = np.asarray(img.convert(mode).resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)
    except FileNotFoundError:
        raise FerretError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise FerretError(f"cannot decode image {path}: {exc}") from None
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def _stratified_split(entries: Entries, fraction: float, rng: np.random.Generator) -> tuple[Entries, Entries]:
    by_class: dict[str, Entries] = {}
    for entry in entries:
        by_class.setdefault(entry[1], []).append(entry)
    train: Entries = []
    test: Entries = []
    for name in sorted(by_class):
        members = by_class[name]
        held = np.zeros(len(members), dtype=bool)
        held[rng.permutation(len(members))[: round(fraction * len(members))]] = True
        train += [e for e, h in zip(members, held, strict=True) if not h]
        test += [e for e, h in zip(members, held, strict=True) if h]
    return train, test


def _split_entries(
    root: Path, layout: str, test_fraction: float, test_groups: str, limit: int | None, rng: np.random.Generator
) -> tuple[Entries, Entries]:
    if layout == "auto":
        held_out = next((root / n for n in ("test", "val") if (root / n).is_dir()), None)
        if (root / "train").is_dir() and held_out is not None:
            annotated = (held_out / "val_annotations.txt").is_file()
            held_entries = _annotated_entries(held_out) if annotated else _class_entries(held_out, limit)
            return _class_entries(root / "train", limit), held_entries
        layout = "classes"
    if layout == "classes":
        return _stratified_split(_class_entries(root, limit), test_fraction, rng)
    if layout != "nested":
        raise FerretError(f"image-folder layout must be auto, classes or nested, got {layout!r}")
    held = {g.strip() for g in test_groups.split(",") if g.strip()}
    groups = sorted(d for d in root.iterdir() if d.is_dir())
    missing = held - {g.name for g in groups}
    if missing:
        raise FerretError(f"test_groups {', '.join(sorted(missing))} not found under {root}")
    train: Entries = []
    test: Entries = []
    for group in groups:
        entries = _class_entries(group, limit)
        if group.name in held:
            test += entries
        else:
            tr, te = _stratified_split(entries, 0.0 if held else test_fraction, rng)
            train, test = train + tr, test + te
    return train, test


@register_dataset("image-folder")
def load_image_folder(
    root: Path | None,
    seed: int = 0,
    size: int = 32,
    channels: int = 3,
    layout: str = "auto",
    test_fraction: float = 0.2,
    test_groups: str = "",
    max_per_class: int | None = None,
) -> Dataset:
    folder = require_root(root, "image-folder", "class folders of images")
    if channels not in (1, 3) or size < 1:
        raise FerretError(f"image-folder needs channels 1 or 3 and size ≥ 1, got {channels}, {size}")
    rng = np.random.default_rng(seed)
    train, test = _split_entries(folder, layout, test_fraction, test_groups, max_per_class, rng)
    classes = sorted({c for _, c in train})
    if len(classes) < 2 or not test:
        raise FerretError(f"{folder}: need images of at least 2 classes and a non-empty test split")
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({c for _, c in test} - set(index))
    if unknown:
        raise FerretError(f"{folder}: test classes without training images: {', '.join(unknown[:5])}")
    mode = "RGB" if channels == 3 else "L"

    def arrays(entries: Entries) -> tuple[np.ndarray, np.ndarray]:
        x = np.stack([_read_image(p, size, mode) for p, _ in entries]).astype(np.float32) / 255.0
        return x, np.array([index[c] for _, c in entries], dtype=np.int64)

    (x_tr, y_tr), (x_te, y_te) = arrays(train), arrays(test)
    return Dataset(folder.name or "image-folder", x_tr, y_tr, x_te, y_te, len(classes), channels * size * size)
