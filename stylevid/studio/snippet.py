"""The Python that reproduces a studio view: stylevid.load, each factor's seed and psi, the upload, the
settings, the grid; it renders the frame the page shows and writes the clip."""

from __future__ import annotations

from stylevid.studio.view import SETTERS, View, shows_upload


def view_snippet(view: View, network: str, frames: int, fps: float, controls: dict, photos=()) -> str:
    """Source code that renders `view` of `network` as the studio does (photos: the uploaded names)."""
    uses_photo = shows_upload(view)
    lines = [
        "import stylevid",
        "from stylevid.codes import Codes",
        "",
        f"gen = stylevid.load({network!r})",
        f"frames, fps = {frames}, {fps:g}",
        f"seeds = {view.seeds!r}",
        f"psi = {view.psi!r}",
    ]
    if uses_photo:
        names = list(photos) or ["photo.png"]
        lines += [
            "# The person in the photos uploaded to the studio (replace the names by your copies' paths)",
            f"person = gen.invert(images={names!r})",
        ]
    lines += [
        "",
        "",
        "def video(seeds):",
        '    """Codes [1], each factor from its own seed (gen.sample: one random stream a factor)."""',
        "    parts = {f: getattr(gen.sample(1, seed=seeds[f], frames=frames, psi=psi[f]), f) for f in seeds}",
    ]
    if uses_photo:
        lines.append("    parts['identity'] = person.identity[:1]")
    lines += ["    return Codes(**parts)", ""]
    if view.grid is None:
        lines += ["codes = video(seeds)"]
    else:
        g = view.grid
        lines += [
            f"# {g.rows} seeds down the rows, {g.columns} seeds along them",
            "codes = Codes.cat([",
            f"    video({{**seeds, {g.rows!r}: seeds[{g.rows!r}] + i,"
            f" {g.columns!r}: seeds[{g.columns!r}] + j}})",
            f"    for i in range({g.n})",
            f"    for j in range({g.n})",
            "])",
        ]
    for factor, method in SETTERS.items():
        values = {n: v for n, v in view.settings.items() if controls[n]["factor"] == factor}
        if values:
            args = ", ".join(f"{n}={v!r}" for n, v in values.items())
            lines.append(f"codes = codes.{method}({args})")
    nrow = "" if view.grid is None else f", nrow={view.grid.n}"
    lines += [
        f"frame = gen.render(codes, [{view.t!r}])  # [N, 1, 3, R, R] in [-1, 1]: what the page shows",
        f"stylevid.save_video(frame[:, 0], 'frame.png'{nrow})",
        f"stylevid.save_video(gen.render(codes, frames), 'clip.mp4', fps=fps{nrow})",
    ]
    return "\n".join(lines) + "\n"
