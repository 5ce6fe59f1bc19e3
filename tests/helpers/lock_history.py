#!/usr/bin/env python3
"""lock_history.py DB READY SECONDS: holds tbwrap's history DB locked the way another process
can (an exclusive transaction with a write, in exclusive locking mode, so even readers of a WAL
database are kept out), creates the file READY once the lock is held, and keeps it SECONDS
seconds or until killed. Used by the shell and end-to-end history tests."""
import sqlite3
import sys
import time

db, ready, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
c = sqlite3.connect(db, isolation_level=None)
c.execute("PRAGMA locking_mode=EXCLUSIVE")
c.execute("BEGIN EXCLUSIVE")
c.execute("UPDATE runs SET scope = scope")
open(ready, "w").close()
time.sleep(seconds)
