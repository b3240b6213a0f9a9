"""Built-in architectures (YAML), loaded by name with
:func:`vltseg_ros.config.model_config.load_model_config`."""
