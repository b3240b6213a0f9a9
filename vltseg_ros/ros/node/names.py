"""Names the node's parameters and the launch files share (imports nothing heavy: the launch
files run without torch)."""

import re

CAMERA_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
"""A camera name: it becomes a parameter prefix and a topic namespace."""
TRANSPORTS = ("raw", "compressed")
"""Image transports of a camera: sensor_msgs/Image, or CompressedImage on <topic>/compressed."""
