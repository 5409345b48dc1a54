/**
 * Serial logs as QEMU wrote them for real `klpforge verify` runs on the
 * fixture kernel (boot log trimmed), CRLF line ends and SeaBIOS escapes kept.
 */
const crlf = (lines: string[]) => lines.map((l) => `${l}\r\n`).join('');

export const PASS_NONCE = '3d7f47b5c092';
export const passingLog = crlf([
  '\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1.16.2-debian-1.16.2-1)',
  '',
  'Booting from ROM..\x1bc\x1b[?7l\x1b[2JLinux version 6.1.192 (root@vm) (gcc (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP Wed Nov 25 20:28:51 UTC 2026',
  'Command line: console=ttyS0 panic=-1',
  'Run /init as init process',
  '@@klpv:3d7f47b5c092:info:kernel:6.1.192',
  '@@klpv:3d7f47b5c092:begin:before.1',
  '@@klpv:3d7f47b5c092:out:before.1:console=ttyS0 panic=-1',
  '@@klpv:3d7f47b5c092:end:before.1:1:PASS',
  '@@klpv:3d7f47b5c092:begin:insmod',
  'livepatch_sample: tainting kernel with TAINT_LIVEPATCH',
  "livepatch: enabling patch 'livepatch_sample'",
  "livepatch: 'livepatch_sample': starting patching transition",
  "livepatch: 'livepatch_sample': patching complete",
  '@@klpv:3d7f47b5c092:end:insmod:0:PASS',
  '@@klpv:3d7f47b5c092:begin:transition',
  '@@klpv:3d7f47b5c092:end:transition:0:PASS',
  '@@klpv:3d7f47b5c092:begin:enabled',
  '@@klpv:3d7f47b5c092:out:enabled:enabled=1',
  '@@klpv:3d7f47b5c092:end:enabled:0:PASS',
  '@@klpv:3d7f47b5c092:begin:loaded.1',
  'input: ImExPS/2 Generic Explorer Mouse as /devices/platform/i8042/serio1/input/input2',
  '@@klpv:3d7f47b5c092:out:loaded.1:this has been live patched',
  '@@klpv:3d7f47b5c092:end:loaded.1:0:PASS',
  '@@klpv:3d7f47b5c092:begin:disable',
  "livepatch: 'livepatch_sample': starting unpatching transition",
  "livepatch: 'livepatch_sample': unpatching complete",
  '@@klpv:3d7f47b5c092:end:disable:0:PASS',
  '@@klpv:3d7f47b5c092:begin:unpatched',
  '@@klpv:3d7f47b5c092:end:unpatched:0:PASS',
  '@@klpv:3d7f47b5c092:begin:rmmod',
  '@@klpv:3d7f47b5c092:end:rmmod:0:PASS',
  '@@klpv:3d7f47b5c092:begin:after.1',
  'tsc: Refined TSC clocksource calibration: 2096.005 MHz',
  'clocksource: Switched to clocksource tsc',
  '@@klpv:3d7f47b5c092:out:after.1:console=ttyS0 panic=-1',
  '@@klpv:3d7f47b5c092:end:after.1:1:PASS',
  '@@klpv:3d7f47b5c092:info:tainted:32768',
  '@@klpv:3d7f47b5c092:done',
  'reboot: Restarting system',
  'reboot: machine restart',
]);

export const BROKEN_NONCE = 'b721331d2dd7';
export const brokenInsmodLog = crlf([
  'Run /init as init process',
  '@@klpv:b721331d2dd7:info:kernel:6.1.192',
  '@@klpv:b721331d2dd7:begin:before.1',
  '@@klpv:b721331d2dd7:end:before.1:1:PASS',
  '@@klpv:b721331d2dd7:begin:insmod',
  'klpforge_broken_livepatch: loading out-of-tree module taints kernel.',
  'klpforge_broken_livepatch: tainting kernel with TAINT_LIVEPATCH',
  "livepatch: symbol 'klpforge_no_such_function' not found in symbol table",
  "livepatch: symbol 'klpforge_no_such_function' not found in symbol table",
  "@@klpv:b721331d2dd7:out:insmod:insmod: can't insert '/klpv/klpforge_broken_livepatch.ko': Invalid argument",
  '@@klpv:b721331d2dd7:end:insmod:22:FAIL',
  '@@klpv:b721331d2dd7:end:transition:-:SKIP',
  '@@klpv:b721331d2dd7:end:enabled:-:SKIP',
  '@@klpv:b721331d2dd7:end:loaded.1:-:SKIP',
  '@@klpv:b721331d2dd7:end:disable:-:SKIP',
  '@@klpv:b721331d2dd7:end:unpatched:-:SKIP',
  '@@klpv:b721331d2dd7:end:rmmod:-:SKIP',
  '@@klpv:b721331d2dd7:end:after.1:-:SKIP',
  '@@klpv:b721331d2dd7:info:tainted:36864',
  '@@klpv:b721331d2dd7:done',
  'reboot: Restarting system',
]);

/** A run killed at its time limit while check 1 (`sleep 100`) was running. */
export const HUNG_NONCE = '0b5cbb07a8a7';
export const hungLog = crlf([
  'Freeing unused kernel image (rodata/data gap) memory: 388K',
  'Run /init as init process',
  '@@klpv:0b5cbb07a8a7:info:kernel:6.1.192',
  '@@klpv:0b5cbb07a8a7:begin:before.1',
  'input: ImExPS/2 Generic Explorer Mouse as /devices/platform/i8042/serio1/input/input2',
  'tsc: Refined TSC clocksource calibration: 2096.006 MHz',
  'clocksource: Switched to clocksource tsc',
]);

/**
 * A kernel with PRINTK_TIME prefixes every record, and a WARNING splat (as
 * 6.1 prints it) lands in the middle of the loaded checks; one check prints
 * text that merely looks like kernel trouble, and a stale marker from another
 * run's nonce appears.
 */
export const WARN_NONCE = 'c0ffee000001';
export const warningLog = crlf([
  '[    0.912345] Run /init as init process',
  '[    0.950000] @@klpv:c0ffee000001:info:kernel:6.1.192',
  '[    1.000001] @@klpv:c0ffee000001:begin:loaded.1',
  '[    1.000100] ------------[ cut here ]------------',
  '[    1.000200] WARNING: CPU: 0 PID: 71 at fs/proc/cmdline.c:9 cmdline_proc_show+0x1c/0x30 [livepatch_sample]',
  '[    1.000300] Modules linked in: livepatch_sample(K)',
  '[    1.000400] CPU: 0 PID: 71 Comm: cat Tainted: G              K    6.1.192 #1',
  '[    1.000500] Call Trace:',
  '[    1.000600]  <TASK>',
  '[    1.000700]  seq_read_iter+0x10c/0x440',
  '[    1.000800]  </TASK>',
  '[    1.000900] ---[ end trace 0000000000000000 ]---',
  '[    1.001000] @@klpv:c0ffee000001:out:loaded.1:BUG: this is only what the check printed: a:b:c',
  '[    1.001100] @@klpv:c0ffee000001:out:loaded.1:WARNING: also just check output',
  '[    1.001150] @@klpv:c0ffee000001:trunc:loaded.1:57',
  '[    1.001200] @@klpv:c0ffee000001:end:loaded.1:0:PASS',
  '[    1.001300] @@klpv:deadbeef0000:end:loaded.2:0:PASS',
  '[    1.001400] @@klpv:c0ffee000001:info:tainted:33280',
  '[    1.001500] @@klpv:c0ffee000001:done',
]);
