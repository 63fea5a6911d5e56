""""One parameter fits all": pick the grid point whose worst validation task gains the most."""

from __future__ import annotations


def choose(points: list[dict]) -> dict:
    """points: {temperature, epochs, gains: {task: gain over prompting}}. Returns the best point
    with its `worst` gain; ties go to the earlier point (list the cheaper settings first)."""
    if not points:
        raise ValueError("no grid points to choose from")
    best = None
    for point in points:
        worst = min(point["gains"].values())
        if best is None or worst > best["worst"]:
            best = {**point, "worst": worst}
    return best
