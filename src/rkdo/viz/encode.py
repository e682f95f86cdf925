"""Frames to a file: an animated GIF with one shared palette (Pillow) or an MP4 (``ffmpeg``).

The GIF palette is a median cut of a montage of up to 8 frames (every other pixel) with
``reserved`` colours appended as they are: 256 entries in all, one table for every frame, and
frames are mapped onto it without dithering. Reserving a colormap's colours keeps thin gradients
(a colour bar, edge colours) smooth: median cut gives few entries to colours that cover few
pixels. The MP4 is H.264 in ``yuv420p`` (even sides, padded), raw RGB piped to ``ffmpeg``.

Either file is written atomically (:func:`rkdo._io.atomic_writer`): a reader never sees half an
animation.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np

from rkdo._io import atomic_writer
from rkdo._validation import check_positive

__all__ = ["MAX_RESERVED", "save_frames"]

MAX_RESERVED = 128  # reserved palette colours; median cut keeps the other 128 or more


def _gif_palette(images: list[np.ndarray], reserved: np.ndarray | None = None):
    """One 256-colour ``P`` image palette for all frames (module docstring)."""
    from PIL import Image

    reserved = np.zeros((0, 3), np.uint8) if reserved is None else np.asarray(reserved, np.uint8)
    picks = np.linspace(0, len(images) - 1, min(len(images), 8)).round().astype(int)
    montage = np.concatenate([images[i][::2, ::2] for i in picks], axis=0)
    base = Image.fromarray(montage).quantize(colors=256 - len(reserved),
                                             method=Image.Quantize.MEDIANCUT)
    used = len(base.getcolors(256))
    colors = base.getpalette()[: 3 * used] + reserved.reshape(-1).tolist()
    palette = Image.new("P", (1, 1))
    palette.putpalette(colors + [0] * (768 - len(colors)))
    return palette


def _write_gif(images: list[np.ndarray], out: Path, fps: float,
               reserved: np.ndarray | None) -> Path:
    from PIL import Image

    palette = _gif_palette(images, reserved)
    colors = palette.getpalette()
    frames = []
    for image in images:
        # indices into one shared palette: the GIF needs no per-frame colour tables
        frame = Image.fromarray(image).quantize(palette=palette, dither=Image.Dither.NONE)
        frame = Image.fromarray(np.asarray(frame), mode="P")
        frame.putpalette(colors)
        frames.append(frame)
    return atomic_writer(out, lambda tmp: frames[0].save(
        tmp, format="GIF", save_all=True, append_images=frames[1:],
        duration=round(1000 / fps), loop=0))


def _write_mp4(images: list[np.ndarray], out: Path, fps: float) -> Path:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise ValueError("writing .mp4 needs ffmpeg on the PATH; install it or use a .gif name")
    height, width, _ = images[0].shape
    raw = b"".join(np.ascontiguousarray(image).tobytes() for image in images)

    def encode(tmp: Path) -> None:
        command = [ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
                   "-s", f"{width}x{height}", "-r", f"{fps}", "-i", "-",
                   "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-pix_fmt", "yuv420p",
                   "-vcodec", "libx264", str(tmp)]
        subprocess.run(command, input=raw, check=True)

    return atomic_writer(out, encode, suffix=".mp4")  # ffmpeg picks the container by suffix


def save_frames(
    images: list[np.ndarray],
    out: str | Path,
    fps: float = 10.0,
    *,
    reserved_colors: np.ndarray | None = None,
) -> Path:
    """Write ``(H, W, 3)`` uint8 frames as a GIF or an MP4, chosen by the suffix of ``out``.

    ``reserved_colors`` (at most :data:`MAX_RESERVED` RGB rows) are kept in the GIF palette as
    they are.
    """
    out = Path(out)
    if reserved_colors is not None and len(reserved_colors) > MAX_RESERVED:
        raise ValueError(f"reserved_colors takes at most {MAX_RESERVED} colours, "
                         f"got {len(reserved_colors)}")
    fps = check_positive("fps", fps)
    if not images:
        raise ValueError("no frames to save")
    suffix = out.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise ValueError(f"out must end in .gif or .mp4, got {out.name!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".mp4":
        return _write_mp4(images, out, fps)
    return _write_gif(images, out, fps, reserved_colors)
