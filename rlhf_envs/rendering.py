"""Drawing a transcript as an image, for ``render_mode="rgb_array"`` (video recorders)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import numpy as np

from rlhf_envs.dialogue import ROLES, Turn

WIDTH, HEIGHT = 640, 480
_MARGIN, _LINE = 10, 14
_COLOURS = {"user": (30, 90, 200), "agent": (20, 140, 60), "system": (120, 120, 120)}


def render_transcript_image(history: Sequence[Turn]) -> np.ndarray:
    """The latest turns that fit, wrapped, on a white ``HEIGHT x WIDTH x 3`` uint8 image."""
    from PIL import Image, ImageDraw, ImageFont  # imported here: only this mode needs it

    lines: list[tuple[str, tuple[int, int, int]]] = []
    for turn in history:
        text = f"{ROLES.get(turn.role, turn.role)}: {turn.text}"
        for line in textwrap.wrap(text, width=100) or [""]:
            lines.append((line, _COLOURS.get(turn.role, (0, 0, 0))))
    fits = (HEIGHT - 2 * _MARGIN) // _LINE
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    for row, (line, colour) in enumerate(lines[-fits:]):
        draw.text((_MARGIN, _MARGIN + row * _LINE), line, fill=colour, font=font)
    return np.asarray(image, dtype=np.uint8)
