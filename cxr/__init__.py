"""Pneumonia classifiers on pediatric chest X-rays: the library behind the DVC stages."""

CLASSES = ("NORMAL", "PNEUMONIA")
MODELS = ("baseline", "balanced", "cnn11", "resnet34")


class CxrError(Exception):
    """A problem the user can fix (bad params, bad input); printed without a traceback."""
