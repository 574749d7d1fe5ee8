"""ROS 2 shell around the ROS-free parts: nodes, message conversion, bag tool, demo.

Nodes: ``perception_node`` (lifecycle), ``simulator_node``, ``controller_node``. Each node module exposes
``PARAMETERS`` (a tuple of :class:`tavi_perception.ros.params.ParamSpec`) that it declares from, so the
launch files and ``config/*.yaml`` can be checked against it without a running graph.
"""
