"""The logic of the launch files (``launch/*.launch.py``), beside the ROS adapter: what their
arguments are and what they make of them (:mod:`.setups`, no ROS import), and the launch
actions they share (:mod:`.actions`, imports ``launch`` / ``launch_ros``)."""
