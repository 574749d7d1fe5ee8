"""tavi_perception: fluoroscopy keypoint perception and guidance for robotic TAVI (research software)."""

__version__ = "0.1.0"
