"""Draw the Teams app icons (run once; the PNGs are committed): `python manifests/teams/make_icons.py`.

color.png 192x192: a white shield on the accent colour. outline.png 32x32: the same shield in
white on a transparent background (Teams requires only white and transparent pixels).
"""

from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
ACCENT = (31, 92, 153, 255)
WHITE = (255, 255, 255, 255)


def shield(size: int, inset: float) -> list[tuple[float, float]]:
    s, i = size, size * inset
    return [(i, i * 1.1), (s / 2, i * 0.6), (s - i, i * 1.1), (s - i, s * 0.52),
            (s / 2, s - i * 0.8), (i, s * 0.52)]


def color() -> Image.Image:
    img = Image.new("RGBA", (192, 192), ACCENT)
    d = ImageDraw.Draw(img)
    d.polygon(shield(192, 0.22), fill=WHITE)
    d.line([(74, 98), (90, 114), (122, 78)], fill=ACCENT, width=12, joint="curve")
    return img


def outline() -> Image.Image:
    img = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.polygon(shield(32, 0.16), outline=WHITE, width=2)
    d.line([(11, 16), (14, 19), (21, 12)], fill=WHITE, width=2)
    # No anti-aliasing in ImageDraw, but make sure: every pixel is white or fully transparent.
    px = img.load()
    for y in range(32):
        for x in range(32):
            r, g, b, a = px[x, y]
            px[x, y] = WHITE if a >= 128 else (0, 0, 0, 0)
    return img


if __name__ == "__main__":
    color().save(HERE / "color.png")
    outline().save(HERE / "outline.png")
    print("wrote", HERE / "color.png", HERE / "outline.png")
