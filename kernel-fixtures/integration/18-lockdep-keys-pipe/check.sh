#!/bin/sh
# The patched alloc_pipe_info says so in the kernel log for every pipe made.
# It passes the running kernel's lockdep keys (three empty `__key` statics of
# fs/pipe.c, one per mutex_init/init_waitqueue_head) to the lock init calls.
n1=$(dmesg | grep -c 'klpforge: pipe allocated')
echo ping | cat >/dev/null
n2=$(dmesg | grep -c 'klpforge: pipe allocated')
echo "messages: $n1 before making a pipe, $n2 after"
[ "$n2" -gt "$n1" ]
