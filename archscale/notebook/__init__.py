"""The notebook layer: the explorer, widgets and papermill reproduction."""
