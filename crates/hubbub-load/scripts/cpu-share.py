#!/usr/bin/env python3
"""Runs CMD and prints, on stderr, the CPU each PID used, CMD itself used (with its
children), the whole machine used, and everything else used ("others" = machine - CMD -
PIDs), each as % of one core over CMD's run; and the load average. "others" shows how much
unrelated work shared the machine during a benchmark run. Standard library only.

    python3 cpu-share.py PID[,PID...] -- CMD [ARGS...]
"""
import os, resource, subprocess, sys, time
pids = [int(p) for p in sys.argv[1].split(",") if p]
cmd = sys.argv[3:]
hz = os.sysconf("SC_CLK_TCK")
def ticks(p):
    f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])
def machine():
    v = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)
p0 = {p: ticks(p) for p in pids}; m0 = machine(); t0 = time.time(); r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
rc = subprocess.call(cmd)
t1 = time.time(); m1 = machine(); r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
p1 = {}
for p in pids:
    try: p1[p] = ticks(p)
    except Exception: p1[p] = p0[p]
el = t1 - t0
gen = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / el * 100
per = {p: (p1[p] - p0[p]) / hz / el * 100 for p in pids}
busy = (m1[0] - m0[0]) / hz / el * 100
others = busy - gen - sum(per.values())
la = open("/proc/loadavg").read().split()[:3]
print(f"[cpu-share] {el:.1f} s; cpu % of one core: " + ", ".join(f"pid {p} {v:.1f}" for p, v in per.items())
      + f", command {gen:.1f}; machine {busy:.1f} of 200; others {others:.1f}; loadavg {' '.join(la)}", file=sys.stderr)
sys.exit(rc)
