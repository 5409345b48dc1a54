#!/bin/sh
# grep is a process forked now: while the livepatch is loaded its status has the shadow's line.
grep '^klpforge_forks:' /proc/self/status || exit 1
