#!/usr/bin/env python3
"""Packs an already-built slackctl binary into a wheel, so `pip install` (and therefore
`st2 pack install`, which pip-installs the pack's requirements.txt) puts `slackctl` in the
virtualenv's bin/ directory, the way ruff and uv ship their binaries.

Nothing is compiled here: the binary cargo built is copied as it is, so CI reuses its one
debug build. Standard library only.

    python3 python/build_wheel.py                          # target/debug/slackctl -> target/wheels/
    python3 python/build_wheel.py --binary target/x86_64-unknown-linux-musl/release/slackctl \\
        --platform-tag manylinux_2_17_x86_64.musllinux_1_2_x86_64   # a wheel for PyPI

The wheel: `slackctl_bin-<version>.data/scripts/slackctl` (pip installs it executable into the
scripts directory), and the `.dist-info` with METADATA, WHEEL and RECORD (sha256 and size of
every file; read back and checked before the wheel is kept). The version is Cargo.toml's. The default platform tag names this machine
(`linux_x86_64`): right for a local or offline install, refused by PyPI. The PyPI tags
`manylinux*` / `musllinux*` promise the binary runs on any such Linux, which a static binary
(a musl build) keeps; this script refuses them for a dynamically linked binary.
"""

import argparse
import base64
import hashlib
import io
import os
import re
import struct
import sys
import sysconfig
import time
import zipfile

DIST = "slackctl-bin"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUMMARY = (
    "The slackctl binary: StackStorm-compatible Slack actions, sensor and emulator "
    "(used by the st2 slack pack)"
)


def cargo_package(field):
    """A field of Cargo.toml's [package] table (a plain string value)."""
    with open(os.path.join(ROOT, "Cargo.toml")) as f:
        text = f.read()
    section = re.search(r"^\[package\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    found = section and re.search(r'^%s\s*=\s*"([^"]*)"' % re.escape(field), section.group(1), re.M)
    if not found:
        raise SystemExit("build_wheel: no %s in Cargo.toml's [package]" % field)
    return found.group(1)


def local_platform_tag():
    return re.sub(r"[-.]", "_", sysconfig.get_platform())


def is_dynamic_elf(path):
    """True when the ELF file asks for a program interpreter (a dynamic loader)."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF":
            raise SystemExit("build_wheel: %s is not an ELF executable" % path)
        wide, endian = head[4] == 2, "<" if head[5] == 1 else ">"
        if wide:
            phoff, = struct.unpack_from(endian + "Q", head, 32)
            phentsize, phnum = struct.unpack_from(endian + "HH", head, 54)
        else:
            phoff, = struct.unpack_from(endian + "I", head, 28)
            phentsize, phnum = struct.unpack_from(endian + "HH", head, 42)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    for i in range(phnum):
        p_type, = struct.unpack_from(endian + "I", table, i * phentsize)
        if p_type == 3:  # PT_INTERP
            return True
    return False


def record_hash(digest):
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class WheelWriter(object):
    def __init__(self, path, compression, date_time):
        self.zip = zipfile.ZipFile(path, "w", compression=compression)
        self.compression = compression
        self.date_time = date_time
        self.records = []

    def _info(self, name, mode):
        info = zipfile.ZipInfo(name, date_time=self.date_time)
        info.compress_type = self.compression
        info.external_attr = (0o100000 | mode) << 16  # a regular file with these permissions
        return info

    def add_bytes(self, name, data, mode=0o644):
        self.zip.writestr(self._info(name, mode), data)
        self.records.append((name, record_hash(hashlib.sha256(data).digest()), len(data)))

    def add_file(self, name, path, mode):
        digest, size = hashlib.sha256(), 0
        with open(path, "rb") as src, self.zip.open(self._info(name, mode), "w",
                                                    force_zip64=True) as dst:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                digest.update(chunk)
                size += len(chunk)
                dst.write(chunk)
        self.records.append((name, record_hash(digest.digest()), size))

    def finish(self, record_name):
        out = io.StringIO()
        for name, digest, size in self.records:
            out.write("%s,%s,%d\n" % (name, digest, size))
        out.write("%s,,\n" % record_name)
        self.zip.writestr(self._info(record_name, 0o644), out.getvalue())
        self.zip.close()


def verify(path):
    """Reads the wheel back: every file listed in RECORD once, with its hash and size."""
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        record = [n for n in names if n.endswith(".dist-info/RECORD")]
        if len(record) != 1:
            raise SystemExit("build_wheel: %s has %d RECORD files" % (path, len(record)))
        listed = {}
        for line in z.read(record[0]).decode().splitlines():
            name, digest, size = line.rsplit(",", 2)
            listed[name] = (digest, size)
        if sorted(listed) != sorted(names):
            raise SystemExit("build_wheel: RECORD does not list exactly the wheel's files")
        for name in names:
            if name == record[0]:
                continue
            h, n = hashlib.sha256(), 0
            with z.open(name) as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
                    n += len(chunk)
            if listed[name] != (record_hash(h.digest()), str(n)):
                raise SystemExit("build_wheel: RECORD is wrong about %s" % name)


def build(binary, out_dir, platform_tag, compression, version=None):
    version = version or cargo_package("version")
    if not re.match(r"^\d+(\.\d+)*([a-z]+\d*)?$", version):
        raise SystemExit("build_wheel: version %r is not a plain PEP 440 release" % version)
    if platform_tag.startswith(("manylinux", "musllinux")) and is_dynamic_elf(binary):
        raise SystemExit(
            "build_wheel: %s is dynamically linked; the %s tag promises it runs on any such "
            "Linux. Build a static binary (--target x86_64-unknown-linux-musl) or leave the "
            "default local tag." % (binary, platform_tag)
        )
    name = DIST.replace("-", "_")
    tag = "py3-none-%s" % platform_tag
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "%s-%s-%s.whl" % (name, version, tag))
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "315532800"))  # 1980-01-01: reproducible
    date_time = max((1980, 1, 1, 0, 0, 0), tuple(time.gmtime(epoch)[:6]))
    dist_info = "%s-%s.dist-info" % (name, version)
    tmp = path + ".part"
    w = WheelWriter(tmp, compression, date_time)
    try:
        w.add_file("%s-%s.data/scripts/slackctl" % (name, version), binary, 0o755)
        metadata = (
            "Metadata-Version: 2.1\n"
            "Name: %s\n"
            "Version: %s\n"
            "Summary: %s\n"
            "License: %s\n"
            "Requires-Python: >=3.6\n"
            "Description-Content-Type: text/plain\n"
            "\n"
            "Installs the `slackctl` binary into the environment's bin directory. The st2 "
            "slack pack names this distribution in its requirements.txt, so `st2 pack "
            "install` gives every action runner and sensor container the binary.\n"
        ) % (DIST, version, SUMMARY, cargo_package("license"))
        w.add_bytes(dist_info + "/METADATA", metadata.encode())
        wheel = (
            "Wheel-Version: 1.0\n"
            "Generator: slackctl python/build_wheel.py\n"
            "Root-Is-Purelib: false\n"
        )
        for t in platform_tag.split("."):
            wheel += "Tag: py3-none-%s\n" % t
        w.add_bytes(dist_info + "/WHEEL", wheel.encode())
        w.finish(dist_info + "/RECORD")
        verify(tmp)
    except BaseException:
        w.zip.close()
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    os.replace(tmp, path)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", default=os.path.join(ROOT, "target", "debug", "slackctl"),
                   help="the built slackctl (default: target/debug/slackctl)")
    p.add_argument("--out", default=os.path.join(ROOT, "target", "wheels"),
                   help="directory for the wheel (default: target/wheels)")
    p.add_argument("--platform-tag", default=local_platform_tag(),
                   help="wheel platform tag(s), dot-separated (default: this machine's, %s)"
                   % local_platform_tag())
    p.add_argument("--store", action="store_true",
                   help="no compression: faster to build and install, for tests")
    p.add_argument("--version", help="override Cargo.toml's version")
    args = p.parse_args(argv)
    if not os.path.isfile(args.binary):
        p.error("%s does not exist: build it first (cargo build)" % args.binary)
    path = build(args.binary, args.out, args.platform_tag,
                 zipfile.ZIP_STORED if args.store else zipfile.ZIP_DEFLATED, args.version)
    print(path)


if __name__ == "__main__":
    sys.exit(main())
