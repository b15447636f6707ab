"""One module per paper experiment or question, with its presets."""
