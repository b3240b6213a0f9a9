"""``vltseg_node`` (:mod:`.vltseg_node`): the ROS 2 adapter of the Segmenter: parameters
(:mod:`.settings`, :mod:`.parameters`), camera I/O, message conversions, diagnostics
(:mod:`.health`), scheduling and transport."""
