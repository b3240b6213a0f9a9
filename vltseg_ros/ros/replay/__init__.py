"""Live replay: a bag played into a running vltseg_node, its outputs recorded and scored.

Bag tools that need rclpy, beside the node's adapter (:mod:`vltseg_ros.ros`): the player
(``vltseg_bag_player``), the recorder (``vltseg_replay_recorder``) and
:func:`live.run_live_replay`, which runs both around a node process (``vltseg bag-eval
--live``, ``make demo``).
"""
