#!/usr/bin/env python3
"""Emit throughput through Hubbub's producer HTTP API (hubbub-load has no emit mode).

CLIENTS WebSocket clients (ids e0..eN-1) connect to the node at TARGET and read every
frame; HTTP_CONNS keep-alive connections to the node at API send pipelined
POST /api/emit {"to":"e<i>","data":"<32 x>"} (round-robin over the ids), at most WINDOW
requests in flight each, for SECONDS. With TARGET on another node of the cluster, every
emit crosses nodes (API node: registry lookup, gRPC to the target node).

Prints emits/s, the API's answers ({"delivered":1}, {"delivered":0}, anything else), the
text frames the clients read, and this process's CPU (% of one core) while sending.
Standard library only. For BENCHMARKS.md "Cluster (end-to-end)".

    python3 emit-bench.py API_HOST:PORT TARGET_HOST:PORT CLIENTS HTTP_CONNS WINDOW SECONDS
"""
import base64, os, re, selectors, socket, sys, threading, time

a, b = sys.argv[1], sys.argv[2]
nclients, nconns, window = (int(x) for x in sys.argv[3:6])
secs = float(sys.argv[6])

def hp(s):
    h, p = s.rsplit(":", 1); return h, int(p)

# ---- clients on node B
frames = 0
clients = []
for i in range(nclients):
    s = socket.create_connection(hp(b))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /ws?id=e{i} HTTP/1.1\r\nHost: {b}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    assert buf.startswith(b"HTTP/1.1 101"), buf[:100]
    rest = buf.split(b"\r\n\r\n", 1)[1]
    s.setblocking(False)
    clients.append([s, rest])

stop = False
def reader():
    global frames
    sel = selectors.DefaultSelector()
    for c in clients:
        sel.register(c[0], selectors.EVENT_READ, c)
    while not stop:
        for key, _ in sel.select(0.2):
            c = key.data
            try:
                d = c[0].recv(1 << 20)
            except BlockingIOError:
                continue
            buf = c[1] + d
            i, n = 0, len(buf)
            while True:
                if n - i < 2: break
                l = buf[i + 1] & 0x7F; h = 2
                if l == 126:
                    if n - i < 4: break
                    l = int.from_bytes(buf[i + 2:i + 4], "big"); h = 4
                elif l == 127:
                    if n - i < 10: break
                    l = int.from_bytes(buf[i + 2:i + 10], "big"); h = 10
                if n - i < h + l: break
                if buf[i] & 0x0F == 1: frames += 1
                i += h + l
            c[1] = buf[i:]
th = threading.Thread(target=reader, daemon=True); th.start()
time.sleep(0.5)
welcomes = frames

# ---- pipelined API senders to node A
payload = "x" * 32
reqs = []
for i in range(nclients):
    body = f'{{"to":"e{i}","data":"{payload}"}}'.encode()
    reqs.append(f"POST /api/emit HTTP/1.1\r\nHost: {a}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
answers = {"1": 0, "0": 0, "other": 0}
sent = 0
lock = threading.Lock()
def sender(k):
    global sent
    s = socket.create_connection(hp(a)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    idx = k; out = 0; got = {"1": 0, "0": 0, "other": 0}; buf = b""; end = time.time() + secs
    n_sent = 0
    while True:
        now = time.time()
        if now < end and out < window:
            batch = []
            while out < window:
                batch.append(reqs[idx % nclients]); idx += nconns; out += 1; n_sent += 1
            s.sendall(b"".join(batch))
        if out == 0 and now >= end: break
        d = s.recv(1 << 20)
        if not d: break
        buf += d
        while True:
            h = buf.find(b"\r\n\r\n")
            if h < 0: break
            m = re.search(rb"[Cc]ontent-[Ll]ength: *(\d+)", buf[:h])
            cl = int(m.group(1)) if m else 0
            if len(buf) < h + 4 + cl: break
            body = buf[h + 4:h + 4 + cl]; buf = buf[h + 4 + cl:]; out -= 1
            if body == b'{"delivered":1}': got["1"] += 1
            elif body == b'{"delivered":0}': got["0"] += 1
            else:
                got["other"] += 1
                if got["other"] < 3: print("answer:", body[:200], file=sys.stderr)
    with lock:
        for x in got: answers[x] += got[x]
        sent += n_sent

t0 = time.time(); c0 = os.times()
ths = [threading.Thread(target=sender, args=(k,)) for k in range(nconns)]
for t in ths: t.start()
for t in ths: t.join()
t1 = time.time(); c1 = os.times()
time.sleep(1.0)
stop = True; th.join()
el = t1 - t0
print(f"emits sent {sent} in {el:.2f} s = {sent/el:,.0f}/s; answers delivered=1 {answers['1']}, delivered=0 {answers['0']}, other {answers['other']}; "
      f"frames read by clients {frames - welcomes} (+{welcomes} welcome); generator cpu {((c1.user+c1.system)-(c0.user+c0.system))/el*100:.0f}%")
