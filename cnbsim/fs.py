"""Small filesystem helpers shared by the phases."""

from __future__ import annotations

import os
import stat


def special_files(dirpath: str, names: list[str]) -> list[str]:
    """The entries of `names` that are neither regular files, directories nor symlinks (sockets,
    FIFOs, devices): reading one could block, and the lifecycle's tar writer skips them.
    Usable as the `ignore` of `shutil.copytree`."""
    out = []
    for name in names:
        try:
            mode = os.lstat(os.path.join(dirpath, name)).st_mode
        except OSError:
            continue
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
            out.append(name)
    return out


def is_regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False
