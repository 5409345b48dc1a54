import { integrationCases } from '../helpers/integration.js';
import { crossKernel } from '../helpers/kernel-cross.js';
import { describeMachineCases, plainKernelOf } from '../helpers/machine-cases.js';

/**
 * The cases marked for ppc64le (case.json `machines`) on the ppc64le fixture
 * kernel, cross-built here (scripts/fetch-kernel --arch ppc64le) and booted in
 * qemu-system-ppc64 -M pseries under TCG: the same `klpforge build` command
 * line as on x86_64, the vmlinux objects compiled with -mcmodel=large and the
 * klp_local_calls gcc plugin (machine.ts), the module loaded into a kernel
 * built with the kernel's own medium model.
 */
const cases = await integrationCases('ppc64le');

describe('ppc64le livepatch cases: klpforge build for the ppc64le kernel, then klpforge verify boots it in qemu-system-ppc64', () => {
  // One case on the full original too: the cross kernel's make variables must reach the original's build (they once did not).
  describeMachineCases('ppc64le', cases, async () => plainKernelOf(await crossKernel('ppc64le')), 7, '02-static-callee-sympos');
});
