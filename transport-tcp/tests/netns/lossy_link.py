"""A lossy, slow point-to-point link between two network namespaces, for tests/netns.rs.

The kernels the tests run on may lack the netem qdisc, so this does its work in user space:
it opens two tun devices (created here, in the caller's namespace; the test then moves each
into its namespace and gives it an address), and forwards every IP packet from one to the
other after DELAY_MS milliseconds, dropping each with probability LOSS (random, seeded by
SEED). On SIGTERM it writes "<forwarded> <dropped>" to STATS and exits.

Usage: lossy_link.py TUN_A TUN_B LOSS DELAY_MS SEED STATS
Prints "ready" once both devices exist.
"""

import fcntl
import heapq
import os
import random
import select
import signal
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def open_tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def main():
    a_name, b_name, loss, delay_ms, seed, stats = sys.argv[1:7]
    loss, delay = float(loss), float(delay_ms) / 1000.0
    a, b = open_tun(a_name), open_tun(b_name)
    other = {a: b, b: a}
    rng = random.Random(int(seed))
    counts = {"forwarded": 0, "dropped": 0}

    def finish(*_):
        with open(stats + ".tmp", "w") as f:
            f.write("%d %d\n" % (counts["forwarded"], counts["dropped"]))
        os.rename(stats + ".tmp", stats)
        sys.exit(0)

    signal.signal(signal.SIGTERM, finish)
    print("ready", flush=True)
    due, seq = [], 0
    while True:
        timeout = max(0.0, due[0][0] - time.monotonic()) if due else None
        readable, _, _ = select.select([a, b], [], [], timeout)
        for fd in readable:
            packet = os.read(fd, 65536)
            if rng.random() < loss:
                counts["dropped"] += 1
                continue
            seq += 1
            heapq.heappush(due, (time.monotonic() + delay, seq, other[fd], packet))
        now = time.monotonic()
        while due and due[0][0] <= now:
            _, _, fd, packet = heapq.heappop(due)
            try:
                os.write(fd, packet)
                counts["forwarded"] += 1
            except OSError:
                # The device is down or gone (the test is tearing the link down).
                counts["dropped"] += 1


main()
