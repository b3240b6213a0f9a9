"""The one ROS wing: everything that imports rclpy or a ROS message package.

- :mod:`.node`: ``vltseg_node``, the adapter (parameters, message conversions, diagnostics);
- :mod:`.replay`: live replay of a bag through a running node (player, recorder);
- :mod:`.launch`: the launch files' logic (their arguments as data, shared launch actions).

It only translates: the work is done by the ML core outside this folder.
"""
