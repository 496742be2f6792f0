"""PictoWorld vocabulary: the closed sets of attribute values and their palette.

Everything the renderer draws and the oracle reads back is named here, so the two can never
disagree about what "blue" or "a chef" looks like.
"""

from __future__ import annotations

SHAPES = ("circle", "square", "triangle")
COLORS = ("red", "green", "blue", "yellow")
POSITIONS = ("left", "right", "top", "bottom", "centre")
SKINS = ("light", "medium", "dark")
PRESENTATIONS = ("man", "woman")
PROFESSIONS = ("firefighter", "chef", "police officer", "construction worker", "doctor")
CLOTHING = ("purple", "orange", "teal", "pink")
NUMBER_WORDS = ("one", "two", "three", "four")
MAX_OBJECTS = 4

# Palette (sRGB, 0-255). Shape colours are saturated; headwear colours are unique per profession
# so that a profession is legible from one small patch of colour.
SHAPE_RGB = {
    "red": (215, 45, 45),
    "green": (50, 165, 65),
    "blue": (45, 85, 215),
    "yellow": (230, 200, 40),
}
SKIN_RGB = {
    "light": (240, 196, 160),
    "medium": (196, 132, 84),
    "dark": (104, 64, 40),
}
CLOTHING_RGB = {
    "purple": (128, 60, 160),
    "orange": (235, 125, 30),
    "teal": (30, 150, 150),
    "pink": (225, 110, 170),
}
# profession -> (headwear name, colour)
HEADWEAR = {
    "firefighter": ("red helmet", (215, 45, 45)),
    "chef": ("white toque", (250, 250, 250)),
    "police officer": ("blue cap", (35, 55, 150)),
    "construction worker": ("yellow hard hat", (230, 200, 40)),
    "doctor": ("green scrub cap", (50, 165, 65)),
}
# Background: plain grey, lightness drawn uniformly in this range (0-255).
BACKGROUND_RANGE = (90, 170)

# Slot centres in a 32-unit canvas (scaled to the render size). Shapes occupy distinct slots.
SLOT_CENTRES = {
    "left": (6.0, 16.0),
    "right": (26.0, 16.0),
    "top": (16.0, 6.0),
    "bottom": (16.0, 26.0),
    "centre": (16.0, 16.0),
}
SHAPE_RADIUS = 4.0  # half-size of a shape in canvas units, before jitter
CANVAS = 32.0
