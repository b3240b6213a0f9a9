"""Running a model on camera frames: preprocessing, tiling, the Segmenter API."""
