#!/bin/sh
# The patched version_proc_show adds a line with pipe_max_size (static in
# fs/pipe.c), then calls print_cpu (static in kernel/time/timer_list.c, a name
# kernel/sched/debug.c has too). A new pipe-max-size shows up in the line, so
# the module reads the kernel's variable, not a copy; "cpu: 0" and " clock 0:"
# are timer_list.c's print_cpu (the scheduler's prints "cpu#0"), so the
# annotation picked the right one of the two.
echo 2097152 > /proc/sys/fs/pipe-max-size || { echo "check: cannot set pipe-max-size"; exit 2; }
head -n 4 /proc/version
grep -q '^klpforge: pipe-max-size 2097152, hrtimers of cpu 0:$' /proc/version || exit 1
grep -q '^cpu: 0$' /proc/version && grep -q '^ clock 0:$' /proc/version
