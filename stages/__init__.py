"""DVC stage entry points: one thin script per stage of dvc.yaml; the logic is in `cxr`."""
