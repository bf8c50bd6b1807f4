#!/usr/bin/env python3
"""sass_summary.py: the instruction mix of one kernel from Nsight Compute's source page
(`ncu --import R --page source --csv --print-source sass > sass.csv`), per SASS opcode and per
stretch of code between barriers (BAR.SYNC), counted per warp per loop trip; then, for the main
stall reasons, the instructions that collect the most samples and the three before each (what
they wait on is usually among those).

Usage: sass_summary.py sass.csv [trip-count]
  trip-count: warp executions of one loop trip (e.g. blocks x chunks x warps); default: the most
  common instruction count (the loop body's)."""
import collections
import csv
import sys

rows = list(csv.reader(open(sys.argv[1])))
head = next(i for i, r in enumerate(rows) if "Instructions Executed" in r)
h = rows[head]
col_n, col_src = h.index("Instructions Executed"), h.index("Source")
col_stall = h.index("Warp Stall Sampling (All Samples)")
code = []
for r in rows[head + 1:]:
    if len(r) < len(h):
        continue
    try:
        n, s = int(r[col_n].replace(",", "")), int(r[col_stall].replace(",", ""))
    except ValueError:
        continue
    ins = r[col_src].strip()
    words = ins.split()
    op = words[1] if words[0].startswith("@") and len(words) > 1 else words[0]
    code.append((n, s, op, ins, r))
total = sum(c[0] for c in code) or 1
stalls = sum(c[1] for c in code) or 1
trip = int(sys.argv[2]) if len(sys.argv) > 2 else \
    collections.Counter(c[0] for c in code if c[0] > 0).most_common(1)[0][0]
print(f"{total:,} warp instructions, {stalls:,} stall samples; per loop trip (x{trip:,}): {total / trip:,.0f}")
mix, mix_stall = collections.Counter(), collections.Counter()
for n, s, op, _, _ in code:
    mix[op.split(".")[0]] += n
    mix_stall[op.split(".")[0]] += s
print("opcode       per trip   % instr  % stalls")
for op, n in mix.most_common(16):
    print(f"{op:10s} {n / trip:10.1f} {100 * n / total:8.1f} {100 * mix_stall[op] / stalls:9.1f}")
print("stretches between barriers (loop-body instructions only):")
seg = collections.Counter()
k = 0
for n, s, op, ins, _ in code:
    if n >= trip // 8:
        seg[(k, "n")] += n
        seg[(k, "s")] += s
        seg[(k, "mma")] += n if "MMA" in op else 0
    if op.startswith("BAR"):
        k += 1
for i in range(k + 1):
    if seg[(i, "n")]:
        print(f"  after barrier {i}: {seg[(i, 'n')] / trip:8.1f} per trip, MMA {seg[(i, 'mma')] / trip:6.1f}, "
              f"stalls {100 * seg[(i, 's')] / stalls:5.1f}%")
for reason in ("stall_long_sb", "stall_short_sb", "stall_wait", "stall_barrier"):
    if reason not in h:
        continue
    col = h.index(reason)
    def samples(c):
        try:
            return int(c[4][col].replace(",", ""))
        except ValueError:
            return 0
    total_r = sum(samples(c) for c in code) or 1
    print(f"{reason} ({total_r:,} samples): top instructions, after the three before each")
    for i in sorted(range(len(code)), key=lambda i: -samples(code[i]))[:6]:
        before = " ; ".join(code[j][3][:36] for j in range(max(0, i - 3), i))
        print(f"  {100 * samples(code[i]) / total_r:5.1f}%  {code[i][3][:48]:48s} | {before}")
