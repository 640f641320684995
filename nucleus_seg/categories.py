"""Category tables used everywhere (converters, configs, metrics, submission). Ids start at 1."""

NUCLEUS_CLASSES = ("nucleus",)

# PanNuke masks.npy channel order as published (channel 5 is background). Converters map channels
# *by these names*, never by the order of another table.
PANNUKE_CHANNELS = ("neoplastic", "inflammatory", "connective", "dead", "epithelial", "background")
PANNUKE_CLASSES = PANNUKE_CHANNELS[:5]


def coco_categories(class_names):
    """COCO ``categories`` list with ids 1..N in the given order."""
    return [{"id": i + 1, "name": n, "supercategory": "nucleus"} for i, n in enumerate(class_names)]
