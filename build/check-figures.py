#!/usr/bin/env python3
"""Checks that the main job's figures carry their text: for each PNG in a folder, the title band (top 44 px), the x
axis label band (bottom 30 px) and the y axis label band (left 30 px) hold dark pixels. A machine without a usable
font draws the plot and no text; this catches it. Usage: python3 build/check-figures.py FOLDER (needs python3-pil)."""
import sys
from pathlib import Path

from PIL import Image


def ink(image, box):
    region = image.crop(box).convert("L")
    return sum(1 for v in region.getdata() if v < 128)


def main(folder):
    figures = sorted(Path(folder).glob("*.png"))
    if not figures:
        print(f"check-figures: no PNG figures in {folder}")
        return 1
    failed = 0
    for path in figures:
        image = Image.open(path)
        w, h = image.size
        bands = {"title": ink(image, (0, 0, w, 44)), "x label": ink(image, (0, h - 30, w, h)), "y label": ink(image, (0, 0, 30, h))}
        missing = [name for name, n in bands.items() if n < 100]
        status = "text present" if not missing else "NO TEXT in " + ", ".join(missing)
        print(f"{path.name}: {w}x{h}, dark pixels {bands}: {status}")
        failed += bool(missing)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "advml-reproduce"))
