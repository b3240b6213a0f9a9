"""Configuration as data: the model config (:mod:`.model_config`: architectures and class sets
read from the YAML files in ``models/`` and ``classes/``), typed YAML into frozen dataclasses
(:mod:`.typed_yaml`), settings tables (:mod:`.options`: node parameters, CLI flags and docs
made from one table), and the built-in training run configs (``training/``)."""
