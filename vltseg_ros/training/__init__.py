"""Training VLTSeg: Mask2Former targets, Hungarian matching and losses, data and the loop.

Every module imports torch only (no mmcv, mmdet or ROS); import what you need from the modules,
e.g. ``from vltseg_ros.training.criterion import Mask2FormerCriterion``.
"""
