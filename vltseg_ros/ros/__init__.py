"""ROS 2 adapter: node, message conversions, parameters, diagnostics."""
