"""ROS 2 shell around the ROS-free parts: nodes, message conversion, bag tool, demo.

Nodes: ``perception_node``, ``simulator_node``, ``controller_node``, all lifecycle nodes run by
:func:`tavi_perception.ros.lifecycle.run` (``autostart`` by default). Each node module exposes
``PARAMETERS`` (a tuple of :class:`tavi_perception.ros.params.ParamSpec`) that it declares from, so the
launch files and ``config/*.yaml`` can be checked against it without a running graph.
"""
