"""Reading what users hand in: the checks of every named file (:mod:`.files`), encoded images
to arrays with their size checked first (:mod:`.image_files`), and sensor_msgs Image /
CompressedImage fields <-> arrays without importing ROS (:mod:`.image_messages`)."""
