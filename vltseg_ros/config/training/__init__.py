"""Built-in training run configs (YAML), loaded by name with
:func:`vltseg_ros.training.run_config.load_run_config`."""
