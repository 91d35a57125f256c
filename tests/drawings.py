"""Test images drawn here (no third-party data): a simple face doodle."""

from PIL import Image, ImageDraw


def drawing(size=(300, 400), width=3) -> Image.Image:
    """Head, eyes, nose and mouth as black strokes on white, scaled to ``size``."""
    image = Image.new("L", size, 255)
    w, h = size
    pen = ImageDraw.Draw(image)
    pen.ellipse((w * 0.2, h * 0.1, w * 0.8, h * 0.85), outline=0, width=width)
    pen.ellipse((w * 0.33, h * 0.4, w * 0.45, h * 0.46), outline=0, width=width)
    pen.ellipse((w * 0.55, h * 0.4, w * 0.67, h * 0.46), outline=0, width=width)
    pen.line([(w * 0.5, h * 0.47), (w * 0.46, h * 0.6), (w * 0.54, h * 0.61)], fill=0, width=width)
    pen.arc((w * 0.37, h * 0.62, w * 0.63, h * 0.74), 20, 160, fill=0, width=width)
    return image
