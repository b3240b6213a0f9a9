"""Segmentation metrics and evaluation reports (ML core: no ROS, no rosbags).

from vltseg_ros.evaluation import ConfusionMatrix, EvaluationReport, write_report
"""

from vltseg_ros.evaluation.metrics import ConfusionMatrix
from vltseg_ros.evaluation.report import EvaluationReport, markdown_table, write_report

__all__ = ["ConfusionMatrix", "EvaluationReport", "markdown_table", "write_report"]
