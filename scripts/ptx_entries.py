#!/usr/bin/env python3
"""Compare the kernels of PTX files, one entry at a time.

PTX of two builds (or two instantiations of one build) differs in labels, local depot numbers
and the shared-memory declaration even where the code is the same. This normalizes those and
reports, per kernel, whether the code is identical.

  python3 scripts/ptx_entries.py list A.ptx [PATTERN]        # the entries (demangled-ish names)
  python3 scripts/ptx_entries.py same A.ptx B.ptx [--map OLD=NEW ...]
      # every entry of A against the entry of B with the same name (after the maps): identical or not
  python3 scripts/ptx_entries.py diff A.ptx NAME_A B.ptx NAME_B [--body] [--noregs]
      # a unified diff of two entries; --body compares only the instructions after the last
      # parameter load; --noregs drops the registers' numbers (the instruction sequences alone)

Make PTX with: nvcc -std=c++17 -O3 -I src -I include -gencode arch=compute_90a,code=sm_90a
  -DTNL_HAVE_SM90A -ptx -o X.ptx src/backends/cuda/chunk_scan_bf16.cu
"""
import difflib
import re
import sys


def entries(path):
    """{mangled name: normalized lines} of the .entry functions of a PTX file."""
    text = open(path).read()
    out = {}
    for chunk in re.split(r"\n(?=\s*// \.globl)", text):
        m = re.search(r"\.entry\s+(\S+?)\(", chunk)
        if m:
            out[m.group(1)] = normalize(chunk)
    return out


def normalize(chunk):
    labels = {}

    def label(m):
        return labels.setdefault(m.group(0), "$L%d" % len(labels))

    lines = []
    for line in chunk.splitlines():
        line = line.strip()
        if not line or line.startswith("//"):
            continue
        line = re.sub(r"\$L__BB\d+_\d+", label, line)
        line = re.sub(r"__local_depot\d+", "__local_depot", line)
        line = re.sub(r"\.extern \.shared .*", ".extern .shared", line)
        line = re.sub(r"_param_(\d+)", r"_param_\1", line)
        lines.append(line)
    return lines


def bare(line):
    """A line without its registers' and labels' numbers, nor a parameter's offset."""
    line = re.sub(r"(%[a-z]+|\$L)\d+", r"\1", line)
    return re.sub(r"\[(%rd|K_param_\d+)\+?-?\d*\]", r"[\1+off]", line)


def strip_names(lines, name):
    return [l.replace(name, "K") for l in lines]


def body(lines):
    """The lines after the last ld.param (the prologue's parameter loads)."""
    last = max((i for i, l in enumerate(lines) if "ld.param" in l), default=-1)
    return lines[last + 1:]


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    cmd = argv[0]
    if cmd == "list":
        pat = argv[2] if len(argv) > 2 else ""
        for name, lines in sorted(entries(argv[1]).items()):
            if pat in name:
                print("%6d  %s" % (len(lines), name))
        return 0
    if cmd == "same":
        a, b = entries(argv[1]), entries(argv[2])
        maps = [m.split("=", 1) for m in argv[argv.index("--map") + 1:]] if "--map" in argv else []
        bad = 0
        for name, lines in sorted(a.items()):
            other = name
            for old, new in maps:
                other = other.replace(old, new)
            if other not in b:
                print("missing  %s" % name)
                bad += 1
                continue
            same = strip_names(lines, name) == strip_names(b[other], other)
            bad += not same
            print("%s %s" % ("same    " if same else "DIFFERS ", name))
        return 1 if bad else 0
    if cmd == "diff":
        a = strip_names(entries(argv[1])[argv[2]], argv[2])
        b = strip_names(entries(argv[3])[argv[4]], argv[4])
        if "--body" in argv:
            a, b = body(a), body(b)
        if "--noregs" in argv:  # registers' numbers dropped: the instruction sequences alone
            a, b = [bare(l) for l in a], [bare(l) for l in b]
        for line in difflib.unified_diff(a, b, argv[2], argv[4], n=2, lineterm=""):
            print(line)
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
