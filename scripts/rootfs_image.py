#!/usr/bin/env python3
"""Pack a root file system folder into a ``docker load`` archive for a given architecture.

``docker import`` labels an image with the engine's own architecture unless the engine
runs in experimental mode, so an arm64 tree imported on an amd64 machine would claim to be
amd64. This writes the image archive itself (one layer, a config with the right
``architecture``) and prints it to standard output:

    scripts/rootfs_image.py ROOTFS TAG ARCH | docker load
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path


def pack(rootfs: Path, tag: str, arch: str, out: io.BufferedWriter) -> None:
    """Write a one-layer image archive of ``rootfs`` named ``tag`` to ``out``."""
    with tempfile.TemporaryDirectory() as tmp:
        layer = Path(tmp) / "layer.tar"
        subprocess.run(
            ["tar", "-C", str(rootfs), "--one-file-system", "--numeric-owner",
             "-cf", str(layer), "."],
            check=True,
        )  # fmt: skip
        digest = hashlib.sha256()
        with layer.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        diff_id = f"sha256:{digest.hexdigest()}"
        config = json.dumps(
            {
                "architecture": arch,
                "os": "linux",
                "config": {
                    "Env": [
                        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                        "LANG=C.UTF-8",
                    ],
                    "Cmd": ["/bin/bash"],
                },
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                "history": [{"created_by": f"debootstrap ({tag})"}],
            },
            sort_keys=True,
        ).encode()
        config_name = f"{hashlib.sha256(config).hexdigest()}.json"
        layer_name = f"{digest.hexdigest()}/layer.tar"
        manifest = json.dumps(
            [{"Config": config_name, "RepoTags": [tag], "Layers": [layer_name]}]
        ).encode()
        with tarfile.open(fileobj=out, mode="w|") as archive:
            for name, data in (("manifest.json", manifest), (config_name, config)):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
            archive.add(str(layer), arcname=layer_name)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: rootfs_image.py ROOTFS TAG ARCH | docker load")
    pack(Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.stdout.buffer)
