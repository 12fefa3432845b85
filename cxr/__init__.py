"""Pneumonia classifiers on pediatric chest X-rays: the library behind the DVC stages."""

CLASSES = ("NORMAL", "PNEUMONIA")
MODELS = ("baseline", "balanced", "cnn11", "resnet34")


class CxrError(Exception):
    """A problem the user can fix (bad params, bad input); printed without a traceback."""
ROI_MODES = ("full", "lungs_crop", "lungs_mask")  # prepare.roi: what the models see (cxr.roi)
