"""Everything a process below an agent, as the agent's own user, can try against tbwrap.

Run from the Bash tool of a real Claude Code agent under tbwrap (tests/e2e/test_tbwrap_attacks.sh).
One line per attack goes to the log given as argv[1]: "NAME: blocked (ERRNO)" when the kernel or
tbwrap refused it, "NAME: SUCCEEDED (what)" when it worked. Standard library only (it runs as a
user who cannot read the test runner's Python installation).
"""
import ctypes
import errno
import mmap
import os
import socket
import struct
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.ptrace.restype = ctypes.c_long
log = open(sys.argv[1], "a")

PROTO_MAGIC = 0x54425732
PTRACE_ATTACH, PTRACE_SEIZE, PTRACE_DETACH = 16, 0x4206, 17
SYS_PIDFD_OPEN, SYS_PIDFD_GETFD, SYS_PROCESS_VM_WRITEV = 434, 438, 311
FALLOC_FL_PUNCH_HOLE_KEEP_SIZE = 0x02 | 0x01


def report(name, blocked, how):
    log.write(f"{name}: {'blocked' if blocked else 'SUCCEEDED'} ({how})\n")
    log.flush()


def check(name, good, how):
    log.write(f"{name}: {'ok' if good else 'FAILED'} ({how})\n")
    log.flush()


def last_errno():
    return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))


def ppid_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def exe_of(pid):
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def runs_claude(pid):
    """The native build's executable is claude; the Node build's is node running claude's cli.js."""
    if "claude" in exe_of(pid):
        return True
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    # It sets its process title to "claude" (its argv reads so); not the Bash tool's shell,
    # whose command line names the CLI's shell snapshot file.
    return "node" in os.path.basename(exe_of(pid)) and (
        argv[0] == b"claude" or (len(argv) > 1 and (argv[1].endswith(b"/cli.js") or argv[1].endswith(b"/claude"))))


# Who is who: the agent is the nearest ancestor running Claude Code; the supervisor's pid is in
# the name of its socket, which every process of the session has in its environment.
agent = ppid_of(os.getpid())
while agent > 1 and not runs_claude(agent):
    agent = ppid_of(agent)
sock_name = os.environ["TBWRAP_SOCKET"]
supervisor = int(sock_name.split("-")[2])

# ---- take over the supervisor or the agent ----
for who, pid in (("supervisor", supervisor), ("agent", agent)):
    for req, rname in ((PTRACE_ATTACH, "PTRACE_ATTACH"), (PTRACE_SEIZE, "PTRACE_SEIZE")):
        r = libc.ptrace(req, pid, 0, 0)
        how = last_errno() if r != 0 else "attached"
        if r == 0:
            libc.ptrace(PTRACE_DETACH, pid, 0, 0)
        report(f"{rname} {who}", r != 0, how)

    class Iovec(ctypes.Structure):
        _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]

    buf = ctypes.create_string_buffer(8)
    local = Iovec(ctypes.addressof(buf), 8)
    remote = Iovec(0x400000, 8)
    r = libc.syscall(SYS_PROCESS_VM_WRITEV, pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    report(f"process_vm_writev {who}", r < 0, last_errno() if r < 0 else "wrote")

    pidfd = libc.syscall(SYS_PIDFD_OPEN, pid, 0)
    got = []
    if pidfd >= 0:
        for fd in range(64):
            if libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0) >= 0:
                got.append(fd)
        how = last_errno() if not got else f"took fds {got}"
        os.close(pidfd)
    else:
        how = "pidfd_open: " + last_errno()
    report(f"pidfd_getfd {who}", not got, how)

# The agent's own memory: Linux lets any process of the same user open a dumpable process's
# /proc/PID/mem unless Yama's ptrace_scope forbids it, and no seccomp rule can see the path of an
# open. Not an attack on tbwrap's state; reported apart (README, Security).
try:
    os.close(os.open(f"/proc/{agent}/mem", os.O_RDWR))
    log.write("limit: open /proc/agent/mem read-write: possible\n")
except OSError as e:
    log.write(f"limit: open /proc/agent/mem read-write: blocked ({errno.errorcode[e.errno]})\n")

for what, flags in (("mem", os.O_RDWR), ("environ", os.O_RDONLY), ("fd/0", os.O_RDONLY)):
    try:
        os.close(os.open(f"/proc/{supervisor}/{what}", flags))
        report(f"open /proc/supervisor/{what}", False, "opened")
    except OSError as e:
        report(f"open /proc/supervisor/{what}", True, errno.errorcode[e.errno])
for what in ("fd", "map_files"):
    try:
        names = os.listdir(f"/proc/{supervisor}/{what}")
        report(f"list /proc/supervisor/{what}", False, f"{len(names)} entries")
    except OSError as e:
        report(f"list /proc/supervisor/{what}", True, errno.errorcode[e.errno])

# ---- find something of tbwrap's to write ----
segs = [n for n in os.listdir("/dev/shm") if "tbwrap" in n]
report("a tbwrap segment in /dev/shm", not segs, f"{len(segs)} found")
found = []
for fd in os.listdir(f"/proc/{agent}/fd"):
    try:
        target = os.readlink(f"/proc/{agent}/fd/{fd}")
    except OSError:
        continue
    # The ledger is a memfd named tbwrap-ledger; anything in /dev/shm would be tbwrap's too.
    if "memfd:" in target or target.startswith("/dev/shm/"):
        found.append(target)
        try:
            os.close(os.open(f"/proc/{agent}/fd/{fd}", os.O_RDWR))
            report(f"reopen the agent's {target} read-write", False, "opened")
        except OSError as e:
            report(f"reopen the agent's {target} read-write", True, errno.errorcode[e.errno])
report("a ledger among the agent's fds", not found, f"{len(found)} found")


# ---- the ledger itself, as tbwrap status receives it ----
def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect("\0" + sock_name)
    return s


s = connect()
s.send(struct.pack("IIIi", PROTO_MAGIC, 3, 0, 0))
_, anc, _, _ = s.recvmsg(1024, socket.CMSG_SPACE(4))
s.close()
ledger = struct.unpack("i", anc[0][2][:4])[0]
size = os.fstat(ledger).st_size


def attempt(name, fn):
    try:
        fn()
        report(name, False, "done")
    except OSError as e:
        report(name, True, errno.errorcode[e.errno])
    except (ValueError, mmap.error) as e:
        report(name, True, str(e))


attempt("write the ledger", lambda: os.write(ledger, b"x"))
attempt("pwrite the ledger", lambda: os.pwrite(ledger, b"\0" * 64, 0))
attempt("truncate the ledger", lambda: os.ftruncate(ledger, 0))
attempt("map the ledger writable", lambda: mmap.mmap(ledger, size, mmap.MAP_SHARED, mmap.PROT_WRITE))


def punch():
    if libc.fallocate(ledger, FALLOC_FL_PUNCH_HOLE_KEEP_SIZE, ctypes.c_long(0), ctypes.c_long(size)) != 0:
        raise OSError(ctypes.get_errno(), "fallocate")


attempt("punch a hole in the ledger", punch)


def reopen_and_write():
    fd = os.open(f"/proc/self/fd/{ledger}", os.O_RDWR)
    try:
        os.write(fd, b"x")
    finally:
        os.close(fd)


attempt("reopen the ledger read-write and write", reopen_and_write)

# ---- flood the supervisor with what it does not expect ----
junk = os.urandom(1 << 16)
held = []
for i in range(300):
    try:
        c = connect()
    except OSError:
        break
    for k in range(20):
        try:
            c.send(junk[k * 997:(k * 997) + 1 + (i * 31 + k * 7) % 2000])
        except OSError:
            break
    if i % 3 == 0:
        # A HELLO from a process that is no agent, a forged exit, a status request cut short.
        for msg in (struct.pack("IIIi", PROTO_MAGIC, 1, 2, 0), struct.pack("IIIi", PROTO_MAGIC, 2, 0, 99),
                    struct.pack("III", PROTO_MAGIC, 3, 0)):
            try:
                c.send(msg)
            except OSError:
                pass
    held.append(c)
hello = connect()
hello.send(struct.pack("IIIi", PROTO_MAGIC, 1, 0, 0))
reply = hello.recv(1024)
verdict = struct.unpack("Ii", reply[:8])[1] if len(reply) >= 8 else -1
report("a HELLO from a process that is no agent", verdict == 1, "refused" if verdict == 1 else f"verdict {verdict}")
s = connect()
s.send(struct.pack("IIIi", PROTO_MAGIC, 3, 0, 0))
_, anc, _, _ = s.recvmsg(1024, socket.CMSG_SPACE(4))
check("the supervisor answers after the flood", bool(anc), "status served" if anc else "no answer")
for c in held:
    c.close()
log.write("done\n")
