"""The preoperative plan and the view it implies (no ROS; docs/plan.md).

- :mod:`.annulus`: the annulus plane from three cusp nadirs or a CT label map, plan files;
- :mod:`.views`: the S-curve of coplanar views, the cusp-overlap and three-cusp views, a C-arm's range;
- :mod:`.obliquity`: a view's obliquity to the annulus plane, the depth/asymmetry/tilt bias it causes
  and the correction the perception pipeline applies;
- :mod:`.cli`: ``tavi-perception plan``.
"""
