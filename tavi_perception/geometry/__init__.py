"""TAVI geometry in millimetres: annulus frame, pigtail binding, deviations, extraction (no ROS)."""
